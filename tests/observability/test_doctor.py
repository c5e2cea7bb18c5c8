"""`decabill doctor` as the installed command, against the local fakes: every dependency up (exit 0), then each
one down or refusing (exit 1, a FAIL line naming it and what to do), and unconfigured ones skipped."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from decabill.migrations import migrate
from tests import conftest
from tests.invoicing.conftest import ISSUER
from tests.processes import DECABILL, free_port

REDIS_URL = "redis://127.0.0.1:6379/14"


def doctor(env: dict[str, str], cwd: Path) -> tuple[int, dict[str, str]]:
    """Exit code and {check name: its line (and the advice line under it)}; `_stdout` / `_stderr` as printed."""
    result = subprocess.run([DECABILL, "doctor"], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    lines: dict[str, str] = {"_stdout": result.stdout, "_stderr": result.stderr}
    name = None
    for line in result.stdout.splitlines():
        if line[:5].strip() in ("OK", "WARN", "FAIL", "SKIP"):
            name = line[6:30].strip()
            lines[name] = line
        elif name and line.strip().startswith("->"):
            lines[name] += "\n" + line
    return result.returncode, lines


def status(lines: dict[str, str], name: str) -> str:
    assert name in lines, lines["_stdout"]
    return lines[name].split()[0]


@pytest.fixture
async def healthy_env(tmp_path, fake_cloud, smtp_sink) -> dict[str, str]:
    fake_cloud.reset()
    url = f"sqlite+aiosqlite:///{tmp_path / 'doctor.sqlite3'}"
    await migrate(url)
    return {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": url,
        "AUTHENTICATION_METHOD": "users", "JWT_SECRET": conftest.JWT_SECRET,
        "ENCRYPTION_KEY": base64.b64encode(b"d" * 32).decode(), "NODE_ENV": "test",
        "REDIS_URL": REDIS_URL, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_sink.port),
        "STRIPE_SECRET_KEY": fake_cloud.stripe_key, "STRIPE_API_BASE": fake_cloud.stripe_url,
        "STRIPE_MAX_NETWORK_RETRIES": "0", "STRIPE_WEBHOOK_SECRET": "whsec_doctor",
        "HETZNER_API_TOKEN": fake_cloud.hetzner_token, "HETZNER_API_URL": fake_cloud.hetzner_url,
        "DIGITALOCEAN_API_TOKEN": fake_cloud.do_token, "DIGITALOCEAN_API_URL": fake_cloud.do_url,
        "CLOUDFLARE_API_TOKEN": fake_cloud.cf_token, "CLOUDFLARE_ZONE_ID": fake_cloud.cf_zone_id,
        "CLOUDFLARE_API_URL": fake_cloud.cf_url, "PROVIDER_MAX_RETRIES": "0",
        **ISSUER,
    }


def test_everything_up_passes(healthy_env, tmp_path):
    code, lines = doctor(healthy_env, tmp_path)
    assert code == 0, lines["_stdout"] + lines["_stderr"]
    for name in ("configuration", "database", "database schema", "redis", "smtp", "payments stripe",
                 "payments stripe webhook", "provider hetzner", "provider digital-ocean", "dns cloudflare",
                 "invoice issuer"):
        assert status(lines, name) == "OK", lines[name]
    assert status(lines, "keycloak") == "SKIP" and status(lines, "tracing") == "SKIP"
    assert "revision" in lines["database schema"] and "server types" in lines["provider hetzner"]
    assert "sk_test" not in lines["_stdout"] and "whsec" not in lines["_stdout"]  # no secret printed


def test_unconfigured_dependencies_are_skipped_not_failed(healthy_env, tmp_path):
    for name in ("REDIS_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "HETZNER_API_TOKEN",
                 "DIGITALOCEAN_API_TOKEN", "CLOUDFLARE_API_TOKEN"):
        healthy_env.pop(name)
    healthy_env["SMTP_HOST"] = ""
    code, lines = doctor(healthy_env, tmp_path)
    assert code == 0, lines["_stdout"]
    for name in ("redis", "smtp", "payments stripe", "provider hetzner", "provider digital-ocean", "dns cloudflare"):
        assert status(lines, name) == "SKIP", lines[name]
    assert "HETZNER_API_TOKEN is not set" in lines["provider hetzner"]


@pytest.mark.parametrize("down, failing, advice", [
    ({"DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:{closed}/nothing"}, "database", "DATABASE_URL"),
    ({"DATABASE_URL": "", "DB_HOST": "/var/run/postgresql", "DB_PORT": "{closed}"}, "database",
     "'billing' at /var/run/postgresql/.s.PGSQL.{closed}"),  # the socket it looked for
    ({"REDIS_URL": "redis://127.0.0.1:{closed}/0"}, "redis", "REDIS_URL"),
    ({"SMTP_PORT": "{closed}"}, "smtp", "SMTP_PORT"),
    ({"STRIPE_SECRET_KEY": "sk_test_not_the_one_stripe_knows"}, "payments stripe", "STRIPE_SECRET_KEY"),
    ({"STRIPE_WEBHOOK_SECRET": ""}, "payments stripe webhook", "signing secret"),
    ({"HETZNER_API_TOKEN": "wrong-token"}, "provider hetzner", "HETZNER_API_TOKEN"),
    ({"DIGITALOCEAN_API_TOKEN": "wrong-token"}, "provider digital-ocean", "DIGITALOCEAN_API_TOKEN"),
    ({"CLOUDFLARE_API_TOKEN": "wrong-token"}, "dns cloudflare", "CLOUDFLARE_API_TOKEN"),
    ({"BILLING_ISSUER_VAT_ID": ""}, "invoice issuer", "BILLING_ISSUER_VAT_ID"),
    ({"QUEUE_ROLE": "worker", "REDIS_URL": ""}, "redis", "REDIS_URL"),
])
def test_each_dependency_down_fails_with_advice(healthy_env, tmp_path, fake_cloud, down, failing, advice):
    closed = str(free_port())  # nothing listens there
    if failing == "payments stripe":
        fake_cloud.stripe.api_key = fake_cloud.stripe_key  # the fake now accepts only the real key
    healthy_env.update({key: value.replace("{closed}", closed) for key, value in down.items()})
    code, lines = doctor(healthy_env, tmp_path)
    assert code == 1, lines["_stdout"]
    assert status(lines, failing) == "FAIL", lines["_stdout"]
    assert advice.replace("{closed}", closed) in lines[failing]  # the line, or the advice under it
    assert [name for name, line in lines.items() if not name.startswith("_") and line.startswith("FAIL")] == [failing]


async def test_a_database_behind_the_code_fails_the_schema_check(healthy_env, tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    await migrate(url, "0006")
    healthy_env["DATABASE_URL"] = url
    code, lines = doctor(healthy_env, tmp_path)
    assert code == 1
    assert status(lines, "database") == "OK" and status(lines, "database schema") == "FAIL"
    assert "at revision 0006" in lines["database schema"] and "decabill migrate" in lines["_stdout"]


def test_an_invalid_configuration_is_one_failed_line(healthy_env, tmp_path):
    healthy_env["ENCRYPTION_KEY"] = "short"
    code, lines = doctor(healthy_env, tmp_path)
    assert code == 1
    assert status(lines, "configuration") == "FAIL" and "ENCRYPTION_KEY" in lines["configuration"]
    assert "Traceback" not in lines["_stdout"] + lines["_stderr"]
