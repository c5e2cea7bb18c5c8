"""Plugins from entry points (groups `decabill.provisioning_providers` and `decabill.payment_processors`):
a tiny distribution is installed on sys.path for the test (a module plus its .dist-info)."""

from __future__ import annotations

import textwrap

import pytest
from structlog.testing import capture_logs

from decabill.config import get_settings
from decabill.providers import PluginLoadError, get_registry, init_registry, load_payment_processors
from tests.catalog.conftest import create_type
from tests.helpers import assert_error

PLUGIN_MODULE = '''
from decimal import Decimal

from decabill.providers import ProvisioningProvider, ServerType


class TinyCloud(ProvisioningProvider):
    id = "tiny-cloud"
    display_name = "Tiny Cloud"

    def config_schema(self):
        return {"properties": {"region": {"type": "string", "enum": ["t1", "t2"]}}, "basePriceFromField": "size"}

    async def fetch_server_types(self):
        return [
            ServerType(id="t-small", name="Small", cores=1, memory=0.5, disk=10, price_monthly=Decimal("2.50"),
                       price_hourly=None, description="Small box", regions=("t1", "t2"), available_regions=("t1",)),
            ServerType(id="t-old", name="Old", cores=1, memory=0.5, disk=5, price_monthly=None, price_hourly=None,
                       description="Old box", regions=("t1",), available_regions=(), deprecated=True),
        ]

    async def create_server(self, request): raise NotImplementedError
    async def delete_server(self, server_id): raise NotImplementedError
    async def server_info(self, server_id): raise NotImplementedError
    async def start_server(self, server_id): raise NotImplementedError
    async def stop_server(self, server_id): raise NotImplementedError
    async def restart_server(self, server_id): raise NotImplementedError


class OwnHetzner(TinyCloud):
    id = "hetzner"
    display_name = "Hetzner (our own module)"


class Incomplete(ProvisioningProvider):  # abstract methods missing: cannot be constructed
    id = "incomplete"
    display_name = "Incomplete"


class NotAProvider:
    pass


class PayProcessor:
    name = "tiny-pay"
'''


def install_plugin(tmp_path, monkeypatch, entry_points: str) -> None:
    (tmp_path / "decabill_test_plugin.py").write_text(PLUGIN_MODULE)
    dist_info = tmp_path / "decabill_test_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: decabill-test-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "decabill_test_plugin", raising=False)


GOOD = """
    [decabill.provisioning_providers]
    tiny = decabill_test_plugin:TinyCloud

    [decabill.payment_processors]
    tiny-pay = decabill_test_plugin:PayProcessor
"""
BROKEN = """
    [decabill.provisioning_providers]
    a-missing-module = decabill_test_plugin_nowhere:Provider
    b-not-a-provider = decabill_test_plugin:NotAProvider
    c-incomplete = decabill_test_plugin:Incomplete
    d-tiny = decabill_test_plugin:TinyCloud
"""


async def test_a_plugin_provider_is_listed_and_used(tmp_path, monkeypatch, env, make_api):
    install_plugin(tmp_path, monkeypatch, GOOD)
    api = await make_api()
    admin = await api.admin_token()

    providers = (await api.get("/service-types/providers", token=admin)).json()
    assert [p["id"] for p in providers] == ["hetzner", "digital-ocean", "tiny-cloud"]
    assert providers[2]["displayName"] == "Tiny Cloud" and providers[2]["configSchema"]["basePriceFromField"] == "size"

    server_types = (await api.get("/service-types/providers/tiny-cloud/server-types", token=admin)).json()
    assert server_types == [{"id": "t-small", "name": "Small", "cores": 1, "memory": 0.5, "disk": 10,
                             "priceMonthly": 2.5, "description": "Small box"}]

    # the interface's default availability rules serve plugins too
    service_type = await create_type(api, admin, provider="tiny-cloud")
    body = {"serviceTypeId": service_type["id"], "region": "t2", "serverType": "t-small"}
    assert (await api.post("/availability/check", token=admin, json=body)).json() == {
        "isAvailable": False, "reason": "Server type temporarily out of capacity in region",
        "alternatives": {"availableTypes": [], "availableRegions": ["t1"]}}
    assert (await api.post("/availability/check", token=admin, json={**body, "region": "t1"})).json() == {"isAvailable": True}
    # and its schema allows customer location selection
    plan = await api.post("/service-plans", token=admin, json={
        "serviceTypeId": service_type["id"], "name": "P", "billingIntervalType": "month", "billingIntervalValue": 1,
        "allowCustomerLocationSelection": True})
    assert plan.status_code == 201


async def test_a_plugin_can_replace_a_built_in_in_place(tmp_path, monkeypatch, env):
    install_plugin(tmp_path, monkeypatch, """
        [decabill.provisioning_providers]
        own-hetzner = decabill_test_plugin:OwnHetzner
    """)
    registry = init_registry(get_settings())
    assert [(p.id, p.display_name) for p in registry] == [("hetzner", "Hetzner (our own module)"),
                                                          ("digital-ocean", "DigitalOcean")]


async def test_broken_plugins_are_logged_and_skipped(tmp_path, monkeypatch, env, make_api):
    install_plugin(tmp_path, monkeypatch, BROKEN)
    with capture_logs() as logs:
        registry = init_registry(get_settings())
    assert [p.id for p in registry] == ["hetzner", "digital-ocean", "tiny-cloud"]
    failures = [entry for entry in logs if entry["event"] == "plugin.load_failed"]
    assert [f["plugin"] for f in failures] == ["a-missing-module", "b-not-a-provider", "c-incomplete"]
    assert all(f["log_level"] == "error" and f["skipped"] for f in failures)
    assert "No module named 'decabill_test_plugin_nowhere'" in failures[0]["error"]
    assert "is not a decabill ProvisioningProvider" in failures[1]["error"]
    assert "abstract" in failures[2]["error"]

    api = await make_api()  # the API keeps working with the plugins that loaded
    admin = await api.admin_token()
    assert [p["id"] for p in (await api.get("/service-types/providers", token=admin)).json()][-1] == "tiny-cloud"
    assert_error(await api.get("/service-types/providers/incomplete/server-types", token=admin), 400,
                 "Provider not supported")


async def test_fail_fast_stops_at_the_first_broken_plugin(tmp_path, monkeypatch, env):
    install_plugin(tmp_path, monkeypatch, BROKEN)
    env.update(DYNAMIC_PROVIDERS_FAIL_FAST="true")
    with capture_logs() as logs, pytest.raises(PluginLoadError) as raised:
        init_registry(get_settings())
    assert str(raised.value).startswith(
        "Could not load plugin 'a-missing-module' (decabill_test_plugin_nowhere:Provider) of entry point group "
        "decabill.provisioning_providers: ModuleNotFoundError")
    assert logs[-1]["event"] == "plugin.load_failed" and logs[-1]["fail_fast"] is True


async def test_payment_processor_plugins(tmp_path, monkeypatch, env):
    install_plugin(tmp_path, monkeypatch, GOOD + """
    broken-pay = decabill_test_plugin:Missing
""")

    def accept(obj):
        if not isinstance(getattr(obj, "name", None), str):
            raise TypeError("not a payment processor")
        return obj()

    with capture_logs() as logs:
        processors = load_payment_processors(accept)
    assert [p.name for p in processors] == ["tiny-pay"]
    assert [entry["plugin"] for entry in logs if entry["event"] == "plugin.load_failed"] == ["broken-pay"]

    env.update(DYNAMIC_PROVIDERS_FAIL_FAST="true")
    with pytest.raises(PluginLoadError):
        load_payment_processors(accept)


async def test_the_registry_follows_the_configuration(env):
    env.update(HETZNER_API_TOKEN="one")
    first = get_registry()
    assert get_registry() is first  # built once per configuration
    env.update(HETZNER_API_TOKEN="two")
    assert get_registry() is not first


def test_fail_fast_stops_the_decabill_command_with_one_line(tmp_path, monkeypatch):
    """The console command builds the registry before anything else: a broken plugin under fail-fast is a
    configuration error (exit 2, one line), a broken plugin without it is only logged."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    install_plugin(tmp_path, monkeypatch, BROKEN)
    command = [str(Path(sys.executable).parent / "decabill"), "migrate"]
    base_env = {**os.environ, "PYTHONPATH": str(tmp_path), "AUTHENTICATION_METHOD": "users", "JWT_SECRET": "x" * 32,
                "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}", "LOG_LEVEL": "warning"}
    stopped = subprocess.run(command, env={**base_env, "DYNAMIC_PROVIDERS_FAIL_FAST": "true"},
                             capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert stopped.returncode == 2
    assert len(stopped.stderr.strip().splitlines()) == 1 and "a-missing-module" in stopped.stderr
    assert "Traceback" not in stopped.stderr

    tolerated = subprocess.run(command, env={**base_env, "DYNAMIC_PROVIDERS_FAIL_FAST": "false"},
                               capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert tolerated.returncode == 0, tolerated.stderr
    assert "plugin.load_failed" in tolerated.stdout
