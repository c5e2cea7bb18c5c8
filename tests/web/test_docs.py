"""API docs for humans (issue #10): Swagger UI at /api/docs/ and the contract at /api/openapi.json, public,
through the same middleware as the API, switched off with API_DOCS_ENABLED=false."""

from __future__ import annotations

import re

import pytest
import yaml

from spec import OPENAPI_PATH
from tests.helpers import assert_error

CONTRACT = yaml.safe_load(OPENAPI_PATH.read_text())
OPERATION_IDS = {op["operationId"] for item in CONTRACT["paths"].values() for op in item.values()
                 if isinstance(op, dict) and "operationId" in op}
EVIL = "https://evil.example"


def operation_ids(document: dict) -> set[str]:
    return {op["operationId"] for item in document["paths"].values() for op in item.values()
            if isinstance(op, dict) and "operationId" in op}


async def load_docs_page(api, **kwargs) -> str:
    """What a browser does: open /api/docs, follow the redirect, fetch every asset the page names."""
    page = await api.get("/docs", follow_redirects=True, **kwargs)
    assert page.status_code == 200, page.text
    assert str(page.url).endswith("/api/docs/")
    assert page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="\./([^"]+)"', page.text)
    assert {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"} <= set(assets)
    for asset in assets:
        response = await api.get(f"/docs/{asset}", **kwargs)
        assert response.status_code == 200, (asset, response.text)
    return page.text


@pytest.mark.parametrize("mode", ["users", "api-key"])
async def test_swagger_ui_loads_without_authentication_and_points_at_the_spec(make_api, env, mode):
    env.update(AUTHENTICATION_METHOD=mode, STATIC_API_KEY="docs-test-key" if mode == "api-key" else None)
    api = await make_api()
    html = await load_docs_page(api)  # no Authorization header anywhere
    assert "SwaggerUIBundle(" in html
    assert 'url: "/api/openapi.json"' in html
    spec = await api.get("/openapi.json")
    assert spec.status_code == 200 and spec.headers["content-type"] == "application/json"
    assert operation_ids(spec.json()) == OPERATION_IDS


async def test_the_spec_document_is_the_contract_as_written(api):
    served = (await api.get("/openapi.json")).json()
    # Only `servers` differs: "Try it out" calls the deployment that serves the page.
    assert served["servers"] == [{"url": "/api"}]
    assert {k: v for k, v in served.items() if k != "servers"} == {k: v for k, v in CONTRACT.items() if k != "servers"}
    assert '"$ref": "#/components/schemas/ErrorResponse"' in (await api.get("/openapi.json")).text  # not inlined

    as_yaml = await api.get("/openapi.yaml")
    assert as_yaml.status_code == 200 and as_yaml.headers["content-type"].startswith("text/yaml")
    assert yaml.safe_load(as_yaml.text) == served


async def test_in_production_the_docs_pass_the_origin_allowlist_cors_and_rate_limiting(make_api, env):
    env.update(NODE_ENV="production", CORS_ORIGIN="https://console.example", RATE_LIMIT_ENABLED="true")
    api = await make_api(fresh=True)
    await load_docs_page(api, headers={"Origin": EVIL, "X-Correlation-Id": "docs-1"})  # GET: not refused
    spec = await api.get("/openapi.json", headers={"Origin": "https://console.example"})
    assert spec.status_code == 200
    assert spec.headers["access-control-allow-origin"] == "https://console.example"
    assert spec.headers["x-correlation-id"]
    assert_error(await api.get("/docs/", tenant="evil"), 400)  # the tenant check applies as everywhere


async def test_the_docs_requests_count_against_the_rate_limit(make_api, env):
    env.update(RATE_LIMIT_ENABLED="true", RATE_LIMIT_LIMIT="2")
    api = await make_api(fresh=True)
    assert (await api.get("/docs/")).status_code == 200
    assert (await api.get("/openapi.json")).status_code == 200
    assert_error(await api.get("/docs/"), 429)


async def test_unknown_paths_and_methods_around_the_docs_keep_the_error_contract(api):
    assert_error(await api.get("/docs/nope.js"), 404, "Cannot GET /api/docs/nope.js")
    assert_error(await api.get("/nope"), 404, "Cannot GET /api/nope")
    assert_error(await api.get("/openapi.xml"), 404, "Cannot GET /api/openapi.xml")
    refused = await api.post("/docs/", json={})
    assert_error(refused, 405)
    assert "GET" in refused.headers["allow"]
    assert_error(await api.post("/openapi.json", json={}), 405)
    # The contract's own routes are untouched: concrete-path 405 with the contract's Allow header.
    health = await api.post("/health", json={})
    assert_error(health, 405)
    assert health.headers["allow"] == "GET"


async def test_api_docs_enabled_false_takes_the_docs_and_the_spec_document_away(make_api, env):
    env.update(API_DOCS_ENABLED="false")
    api = await make_api()
    for path in ("/docs", "/docs/", "/docs/swagger-ui.css", "/openapi.json", "/openapi.yaml"):
        assert_error(await api.get(path), 404, f"Cannot GET /api{path}")
    assert (await api.get("/health")).status_code == 200
