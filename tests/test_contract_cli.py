"""`decabill contract-test` (issue #10) as a user runs it: the installed command against a running
`decabill serve` (api-key mode, its own SQLite file), and against a deployment that breaks the contract."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from tests.fakes.server import FakeCloud
from tests.processes import DECABILL, decabill_serve, free_port

API_KEY = "contract-test-api-key-0123"
# Quick but varied: public, admin create/read, and an own-data operation the API key gets 400 for.
OPERATIONS = ["getConfig", "getHealth", "listServiceTypes", "createServiceType", "getServiceType", "listSubscriptions"]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("contract")
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "DATABASE_URL": f"sqlite+aiosqlite:///{home / 'contract.sqlite3'}",
        "AUTHENTICATION_METHOD": "api-key",
        "STATIC_API_KEY": API_KEY,
        "ENCRYPTION_KEY": base64.b64encode(b"t" * 32).decode(),
        "TENANTS": "acme",
        "SMTP_HOST": "",
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "warning",
        "NODE_ENV": "development",
    }


@pytest.fixture(scope="module")
def deployment(env, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("serve")
    with decabill_serve(env, workdir, workdir / "serve.log") as base:
        yield base


def contract_test(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([DECABILL, "contract-test", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def only(operations: list[str]) -> list[str]:
    return [arg for op in operations for arg in ("--operation", op)]


def test_a_conforming_deployment_passes_with_a_per_operation_report(deployment, env, tmp_path):
    junit = tmp_path / "report" / "junit.xml"
    junit.parent.mkdir()
    result = contract_test("--base-url", deployment, "--token", API_KEY, "--max-examples", "2",
                           "--junit-xml", str(junit), *only(OPERATIONS), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = result.stdout
    assert f"Contract test of {deployment} (tenant default, api-key mode)" in report
    for operation_id in OPERATIONS:
        assert f"PASS  {operation_id} " in report
    assert "GET /service-types/{id}" in report
    assert f"{len(OPERATIONS)} operations: {len(OPERATIONS)} passed, 0 failed" in report
    assert "every check passed" in report
    assert API_KEY not in report + result.stderr  # the token is never printed
    assert junit.read_text().count("<testcase") >= len(OPERATIONS)
    assert not (tmp_path / ".hypothesis").exists() and not (tmp_path / ".schemathesis").exists()


def test_another_tenant_and_a_subset_of_checks(deployment, env, tmp_path):
    result = contract_test("--base-url", deployment + "/", "--token", API_KEY, "--tenant", "acme", "--max-examples", "1",
                           "--checks", "not_a_server_error,status_code_conformance", *only(["listServicePlans"]),
                           env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(tenant acme, api-key mode)" in result.stdout
    assert "checks: not_a_server_error,status_code_conformance" in result.stdout
    assert "PASS  listServicePlans  GET /service-plans" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--token", "not-the-key"], "the deployment (api-key mode) refuses the token: Invalid API key"),
    (["--token", API_KEY, "--tenant", "evil"], "the deployment refuses the tenant 'evil'"),
    (["--token", API_KEY, "--operation", "noSuchOperation"], "unknown operation id noSuchOperation"),
    (["--token", API_KEY, "--checks", "no_such_check", "--operation", "getConfig"], "Invalid value for '--checks'"),
])
def test_a_wrong_token_tenant_or_argument_is_one_line_and_exit_code_2(deployment, env, tmp_path, args, message):
    result = contract_test("--base-url", deployment, *args, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("base_url", "message"), [
    ("http://127.0.0.1:{free_port}/api", "cannot reach http://127.0.0.1:"),  # nothing listens there
    ("localhost:3200/api", "--base-url must be an http(s) URL"),
])
def test_an_unreachable_or_malformed_url_is_one_line_and_exit_code_2(env, tmp_path, base_url, message):
    base_url = base_url.format(free_port=free_port())
    result = contract_test("--base-url", base_url, "--token", API_KEY, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("decabill contract-test: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_url_that_is_no_decabill_api_is_named(deployment, env, tmp_path):
    result = contract_test("--base-url", deployment.removesuffix("/api"), "--token", API_KEY, env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "no Decabill API answers at" in result.stderr and "ends in /api" in result.stderr


@pytest.fixture
def broken_deployment():
    """Answers the pre-flight like Decabill, but GET /health fails with a 500 in plain text."""
    async def config(_request):
        return JSONResponse({"authenticationMethod": "api-key"})

    async def service_types(_request):
        return JSONResponse([])

    async def health(_request):
        return PlainTextResponse("database exploded", status_code=500)

    cloud = FakeCloud()  # its thread-served Starlette app, with an /api of ours
    cloud.app.router.routes.append(Mount("/api", app=Starlette(routes=[
        Route("/config", config), Route("/service-types", service_types), Route("/health", health),
    ])))
    with cloud:
        yield f"{cloud.url}/api"


def test_contract_violations_are_reported_with_a_reproduction_and_exit_code_1(broken_deployment, env, tmp_path):
    result = contract_test("--base-url", broken_deployment, "--token", API_KEY, "--max-examples", "1",
                           *only(["getHealth"]), env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    report = result.stdout
    assert "FAIL  getHealth  GET /health" in report
    assert "FAIL getHealth - GET /health" in report  # the failure section
    assert "Server error" in report and "[500]" in report
    assert f"curl -X GET -H 'X-Tenant: default' -H 'Authorization: [Filtered]' {broken_deployment}/health" in report
    assert "put your token back in" in report
    assert "1 operation: 0 passed, 1 failed" in report and "contract violations found" in report
