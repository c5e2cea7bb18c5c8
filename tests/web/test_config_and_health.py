"""`GET /api/config` (decision D2: public, operator-visible, never a secret) and `GET /api/health`."""

from __future__ import annotations

from decabill import db
from tests.conftest import JWT_SECRET, TEST_ENCRYPTION_KEY
from tests.helpers import assert_error

KEYCLOAK_CLIENT_SECRET = "kc-client-secret-do-not-leak-7f3a"
STATIC_API_KEY = "static-api-key-do-not-leak-91bc"
SMTP_PASSWORD = "smtp-password-do-not-leak-55aa"
SECRETS = [JWT_SECRET, TEST_ENCRYPTION_KEY, KEYCLOAK_CLIENT_SECRET, STATIC_API_KEY, SMTP_PASSWORD]


def assert_no_secret_in(response) -> None:
    for secret in SECRETS:
        assert secret not in response.text, f"a secret leaked into {response.request.url}"


async def test_config_is_public_and_describes_users_mode(api):
    response = await api.get("/config")  # no Authorization header at all
    assert response.status_code == 200
    assert response.json() == {
        "authenticationMethod": "users",
        "keycloak": None,
        "signupEnabled": True,
        "websocket": {"port": 8082, "namespace": "billing"},
        "currency": "EUR",
        "taxRates": {"standard": 19, "reduced": 7},
        "tenant": "default",
    }


async def test_config_reports_the_request_tenant(api):
    assert (await api.get("/config", tenant="acme")).json()["tenant"] == "acme"
    assert_error(await api.get("/config", tenant="evil"), 400)


async def test_config_follows_the_operator_settings(make_api, env):
    env.update(DISABLE_SIGNUP="true", WEBSOCKET_PORT="9100", WEBSOCKET_NAMESPACE="/dashboard/", BILLING_CURRENCY="CHF",
               BILLING_TAX_RATE_STANDARD="8.1", BILLING_TAX_RATE_REDUCED="2.6")
    body = (await (await make_api()).get("/config")).json()
    assert body["signupEnabled"] is False
    assert body["websocket"] == {"port": 9100, "namespace": "dashboard"}
    assert body["currency"] == "CHF"
    assert body["taxRates"] == {"standard": 8.1, "reduced": 2.6}


async def test_config_shows_the_keycloak_block_in_keycloak_mode_and_never_a_secret(make_api, env):
    env.update(
        AUTHENTICATION_METHOD="keycloak",
        KEYCLOAK_SERVER_URL="http://keycloak.internal:8080",
        KEYCLOAK_AUTH_SERVER_URL="https://login.example.com",
        KEYCLOAK_REALM="billing",
        KEYCLOAK_CLIENT_ID="billing-console",
        KEYCLOAK_CLIENT_SECRET=KEYCLOAK_CLIENT_SECRET,
        STATIC_API_KEY=STATIC_API_KEY,
        SMTP_PASSWORD=SMTP_PASSWORD,
    )
    response = await (await make_api()).get("/config")
    assert response.status_code == 200
    body = response.json()
    assert body["authenticationMethod"] == "keycloak"
    # The browser signs in at the public (auth server) URL, not the internal one the API uses for its JWKS.
    assert body["keycloak"] == {"serverUrl": "https://login.example.com", "realm": "billing",
                                "clientId": "billing-console"}
    assert body["signupEnabled"] is False
    assert_no_secret_in(response)


async def test_config_has_no_keycloak_block_and_no_secret_in_other_modes(make_api, env):
    env.update(KEYCLOAK_SERVER_URL="http://keycloak.internal:8080", KEYCLOAK_REALM="billing",
               KEYCLOAK_CLIENT_SECRET=KEYCLOAK_CLIENT_SECRET, SMTP_PASSWORD=SMTP_PASSWORD)
    users_mode = await (await make_api()).get("/config")
    assert users_mode.json()["keycloak"] is None
    assert_no_secret_in(users_mode)

    env.update(AUTHENTICATION_METHOD="api-key", STATIC_API_KEY=STATIC_API_KEY)
    key_mode = await (await make_api()).get("/config")
    assert key_mode.json()["authenticationMethod"] == "api-key"
    assert key_mode.json()["keycloak"] is None
    assert key_mode.json()["signupEnabled"] is False  # there is no /auth/register in api-key mode
    assert_no_secret_in(key_mode)


async def test_health_reports_ok_without_credentials(api):
    response = await api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_health_is_503_when_the_database_cannot_be_reached(make_api, env, database):
    api = await make_api()
    env.update(DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/unreachable")
    from decabill.config import get_settings

    # Swap the process-wide engine for one pointing nowhere, and put the test database back afterwards
    # (the `database` fixture disposes whatever engine is current when the test ends).
    await db.dispose_engine()
    db.init_engine(get_settings().database_url)
    try:
        response = await api.get("/health")
    finally:
        await db.dispose_engine()
        db.init_engine(database)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "degraded", "database": "unreachable"}
    assert (await api.get("/health")).status_code == 200  # and healthy again with the real database
