"""What every request goes through before routing (behavior.md part A §1.2, §1.3): the correlation id,
CORS, the origin allowlist and rate limiting."""

from __future__ import annotations

import uuid

from tests.helpers import assert_error

CONSOLE = "https://console.example"
EVIL = "https://evil.example"
TOO_MANY = "Too many requests, please try again later."
LOGIN = {"email": "nobody@example.com", "password": "whatever-1"}


# --- correlation id -------------------------------------------------------------------------------


async def test_a_given_correlation_id_is_echoed(api):
    response = await api.get("/health", headers={"X-Correlation-Id": "trace-abc-123"})
    assert response.headers["x-correlation-id"] == "trace-abc-123"


async def test_x_request_id_is_accepted_as_the_correlation_id(api):
    response = await api.get("/health", headers={"X-Request-Id": "req-42"})
    assert response.headers["x-correlation-id"] == "req-42"


async def test_a_correlation_id_is_generated_when_none_is_given(api):
    first = (await api.get("/health")).headers["x-correlation-id"]
    second = (await api.get("/health")).headers["x-correlation-id"]
    assert uuid.UUID(first) and uuid.UUID(second) and first != second


async def test_errors_carry_the_correlation_id_too(api):
    assert (await api.get("/nope", headers={"X-Correlation-Id": "c-404"})).headers["x-correlation-id"] == "c-404"
    refused = await api.get("/health", tenant="evil", headers={"X-Correlation-Id": "c-400"})
    assert_error(refused, 400)
    assert refused.headers["x-correlation-id"] == "c-400"


# --- CORS -----------------------------------------------------------------------------------------


def _preflight(origin: str, method: str = "POST") -> dict:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type,x-tenant",
    }


async def test_without_cors_origin_outside_production_any_origin_may_call(api):
    preflight = await api.request("OPTIONS", "/users", headers=_preflight("https://anywhere.example"))
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    allowed_headers = preflight.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "x-tenant", "x-correlation-id", "x-request-id"):
        assert header in allowed_headers
    # ...and the origin allowlist is not enforced.
    assert_error(await api.post("/auth/login", json=LOGIN, headers={"Origin": EVIL}), 401)


async def test_preflight_from_an_allowed_origin_gets_cors_headers_and_others_do_not(make_api, env):
    env.update(CORS_ORIGIN=f"{CONSOLE}, https://admin.example")
    api = await make_api()
    preflight = await api.request("OPTIONS", "/users", headers=_preflight(CONSOLE))
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == CONSOLE
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "POST" in preflight.headers["access-control-allow-methods"]

    evil = await api.request("OPTIONS", "/users", headers=_preflight(EVIL))
    assert "access-control-allow-origin" not in evil.headers

    simple = await api.get("/health", headers={"Origin": CONSOLE})
    assert simple.headers["access-control-allow-origin"] == CONSOLE
    assert "x-correlation-id" in simple.headers["access-control-expose-headers"].lower()


async def test_unsafe_requests_from_an_origin_not_listed_in_cors_origin_are_403(make_api, env):
    env.update(CORS_ORIGIN=CONSOLE)
    api = await make_api()
    assert_error(await api.post("/auth/login", json=LOGIN, headers={"Origin": EVIL}), 403, "Origin not allowed")
    assert_error(await api.delete(f"/users/{uuid.uuid4()}", headers={"Origin": EVIL}), 403, "Origin not allowed")
    # Safe methods are not refused (the browser's CORS check protects their answers).
    assert (await api.get("/health", headers={"Origin": EVIL})).status_code == 200
    # The listed origin passes (compared trimmed and case-insensitively), and so do callers without Origin.
    assert_error(await api.post("/auth/login", json=LOGIN, headers={"Origin": CONSOLE}), 401,
                 "Invalid email or password")
    assert_error(await api.post("/auth/login", json=LOGIN, headers={"Origin": " HTTPS://Console.Example "}), 401)
    assert_error(await api.post("/auth/login", json=LOGIN), 401)


async def test_a_literal_star_in_cors_origin_allows_every_origin(make_api, env):
    env.update(CORS_ORIGIN="*", NODE_ENV="production")
    api = await make_api()
    assert_error(await api.post("/auth/login", json=LOGIN, headers={"Origin": EVIL}), 401)


async def test_in_production_without_cors_origin_unsafe_requests_with_any_origin_are_refused(make_api, env):
    env.update(NODE_ENV="production")  # ENCRYPTION_KEY and JWT_SECRET come from the base environment
    api = await make_api()
    assert_error(await api.post("/auth/login", json=LOGIN, headers={"Origin": CONSOLE}), 403, "Origin not allowed")
    assert_error(await api.post("/auth/register", json=LOGIN, headers={"Origin": "http://localhost:4500"}), 403)
    assert (await api.get("/health", headers={"Origin": CONSOLE})).status_code == 200
    assert_error(await api.post("/auth/login", json=LOGIN), 401)  # no Origin: not a browser, not refused
    preflight = await api.request("OPTIONS", "/auth/login", headers=_preflight(CONSOLE))
    assert "access-control-allow-origin" not in preflight.headers  # CORS disabled


# --- rate limiting ----------------------------------------------------------------------------------


async def test_the_request_after_the_limit_is_429(make_api, env):
    env.update(RATE_LIMIT_ENABLED="true", RATE_LIMIT_LIMIT="5", RATE_LIMIT_TTL="60")
    api = await make_api(fresh=True)
    for _ in range(5):
        assert (await api.get("/health")).status_code == 200
    refused = await api.get("/health")
    assert_error(refused, 429, TOO_MANY)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # The budget is per client, not per route.
    assert_error(await api.get("/config"), 429, TOO_MANY)
    assert_error(await api.get("/nope"), 429, TOO_MANY)


async def test_refusals_by_the_limiter_carry_cors_headers_so_a_console_can_read_them(make_api, env):
    env.update(RATE_LIMIT_ENABLED="true", RATE_LIMIT_LIMIT="1", CORS_ORIGIN=CONSOLE)
    api = await make_api(fresh=True)
    await api.get("/health", headers={"Origin": CONSOLE})
    refused = await api.get("/health", headers={"Origin": CONSOLE, "X-Correlation-Id": "c-429"})
    assert_error(refused, 429, TOO_MANY)
    assert refused.headers["access-control-allow-origin"] == CONSOLE
    assert refused.headers["x-correlation-id"] == "c-429"


async def test_credential_endpoints_have_a_stricter_budget(make_api, env):
    env.update(RATE_LIMIT_ENABLED="true", RATE_LIMIT_LIMIT="100", RATE_LIMIT_AUTH_LIMIT="3")
    api = await make_api(fresh=True)
    for _ in range(3):
        assert_error(await api.post("/auth/login", json=LOGIN), 401)
    assert_error(await api.post("/auth/login", json=LOGIN), 429, TOO_MANY)
    assert_error(await api.post("/auth/request-password-reset", json={"email": "a@example.com"}), 429, TOO_MANY)
    assert_error(await api.post("/auth/register", json=LOGIN), 429, TOO_MANY)
    # Everything else still has its own, larger budget.
    assert (await api.get("/health")).status_code == 200


async def test_the_limiter_is_on_by_default_in_production(make_api, env):
    env.update(NODE_ENV="production", RATE_LIMIT_ENABLED=None, RATE_LIMIT_LIMIT="5")
    api = await make_api(fresh=True)
    statuses = [(await api.get("/health")).status_code for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3


async def test_rate_limit_enabled_false_switches_it_off_even_in_production(make_api, env):
    env.update(NODE_ENV="production", RATE_LIMIT_ENABLED="false", RATE_LIMIT_LIMIT="5", RATE_LIMIT_AUTH_LIMIT="2")
    api = await make_api(fresh=True)
    assert [(await api.get("/health")).status_code for _ in range(20)] == [200] * 20
    # Ten different accounts: the per-account sign-in throttle (on whatever RATE_LIMIT_ENABLED says) stays out.
    logins = [{**LOGIN, "email": f"nobody{n}@example.com"} for n in range(10)]
    assert [(await api.post("/auth/login", json=login)).status_code for login in logins] == [401] * 10


async def test_the_limiter_is_off_by_default_outside_production(make_api, env):
    env.update(RATE_LIMIT_ENABLED=None, RATE_LIMIT_LIMIT="5")
    api = await make_api(fresh=True)
    assert [(await api.get("/health")).status_code for _ in range(20)] == [200] * 20
