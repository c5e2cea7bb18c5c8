"""The contract and the code stay in step: compatibility with the reference, one handler per operation
found from its operationId, X-Tenant and the error responses documented everywhere, and the first rung
of the auth ladder (no credentials → 401 ErrorResponse) on every authenticated operation."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import uuid
from pathlib import Path

import httpx
import inflection
import pytest
import yaml

import handlers
from decabill.web.app import create_app
from decabill.config import get_settings, reset_settings_cache
from spec import OPENAPI_PATH
from tests.conftest import BASE_ENV, Api
from tests.helpers import assert_error

ROOT = Path(__file__).resolve().parents[1]
SPEC_COMPAT = ROOT.parent / "shared" / "tools" / "spec-compat"
SPEC = yaml.safe_load(OPENAPI_PATH.read_text())
METHODS = ("get", "post", "put", "patch", "delete")
OPERATIONS = [
    (path, method, op)
    for path, item in SPEC["paths"].items()
    for method, op in item.items()
    if method in METHODS
]


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        target = SPEC
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def test_spec_is_wire_compatible_with_the_reference():
    if not SPEC_COMPAT.exists():
        pytest.skip("../shared/tools/spec-compat is not beside this checkout")
    result = subprocess.run([str(SPEC_COMPAT), str(OPENAPI_PATH)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_spec_declares_openapi_3_0_for_connexion():
    assert SPEC["openapi"].startswith("3.0.")


def test_every_operation_has_exactly_one_handler_and_every_handler_one_operation():
    served: dict[str, str] = {}
    for _path, _method, op in OPERATIONS:
        module = importlib.import_module(op["x-openapi-router-controller"])
        name = inflection.underscore(op["operationId"])
        assert inspect.iscoroutinefunction(getattr(module, name, None)), f"{module.__name__}.{name} missing"
        served[f"{module.__name__}.{name}"] = op["operationId"]
    for info in pkgutil.iter_modules(handlers.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"handlers.{info.name}")
        for name, function in inspect.getmembers(module, inspect.iscoroutinefunction):
            if function.__module__ == module.__name__ and not name.startswith("_"):
                assert f"{module.__name__}.{name}" in served, f"{module.__name__}.{name} serves no operation"


@pytest.mark.parametrize("path, method, op", OPERATIONS, ids=[op["operationId"] for _, _, op in OPERATIONS])
def test_every_operation_documents_tenant_and_its_errors(path, method, op):
    params = [_resolve(p) for p in op.get("parameters", [])]
    assert any(p["in"] == "header" and p["name"] == "X-Tenant" for p in params)
    codes = set(op["responses"])
    assert {"400", "429"} <= codes
    if op.get("security", SPEC.get("security")):
        assert {"401", "403"} <= codes
    for code, response in op["responses"].items():
        if code.startswith("4"):
            content = _resolve(response)["content"]["application/json"]["schema"]
            assert _resolve(content) is _resolve({"$ref": "#/components/schemas/ErrorResponse"})


AUTHENTICATED = [(p, m, op) for p, m, op in OPERATIONS if op.get("security", SPEC.get("security"))]


@pytest.fixture(scope="module")
async def anonymous_api():
    """No database needed: authentication fails before any query."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in BASE_ENV.items():
            patch.setenv(key, value)
        reset_settings_cache()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(get_settings())),
                                     base_url="http://testserver") as client:
            yield Api(client)
    reset_settings_cache()


@pytest.mark.parametrize("path, method, op", AUTHENTICATED, ids=[op["operationId"] for _, _, op in AUTHENTICATED])
async def test_every_authenticated_operation_answers_401_without_credentials(anonymous_api, path, method, op):
    concrete = path
    for param in (_resolve(p) for p in op.get("parameters", [])):
        if param["in"] == "path":
            concrete = concrete.replace("{" + param["name"] + "}", str(uuid.uuid4()))
    response = await anonymous_api.request(method.upper(), concrete, json={} if method == "post" else None)
    assert_error(response, 401)
