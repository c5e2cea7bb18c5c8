"""AUTHENTICATION_METHOD=keycloak (behavior.md part A §2.3, §3.2): access tokens of the realm, verified offline
against its JWKS (fake Keycloak in tests/fakes/keycloak.py), then synced to a local user of the request tenant."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Iterator

import pytest

from decabill.identity import keycloak as keycloak_module
from tests.conftest import JWT_SECRET
from tests.fakes.keycloak import KeycloakState, new_rsa_key
from tests.helpers import assert_error

REALM = KeycloakState.REALM
CLIENT_ID = KeycloakState.CLIENT_ID
LOCKED = "This account is locked. Please contact an administrator."


@pytest.fixture
def realm(fake_cloud) -> Iterator[KeycloakState]:
    fake_cloud.keycloak.reset()
    keycloak_module.jwks_cache.clear()  # process-wide cache: every test starts without keys
    yield fake_cloud.keycloak
    keycloak_module.jwks_cache.clear()


@pytest.fixture
def clock(monkeypatch):
    """Moves the JWKS cache's clock forward without sleeping (`clock.advance(seconds)`)."""
    real = keycloak_module.time.monotonic
    state = types.SimpleNamespace(offset=0.0)
    monkeypatch.setattr(keycloak_module, "time", types.SimpleNamespace(monotonic=lambda: real() + state.offset))

    def advance(seconds: float) -> None:
        state.offset += seconds

    return types.SimpleNamespace(advance=advance)


@pytest.fixture
async def kc(env, make_api, fake_cloud, realm):
    env.update(
        AUTHENTICATION_METHOD="keycloak",
        KEYCLOAK_SERVER_URL=fake_cloud.keycloak_url,
        KEYCLOAK_REALM=REALM,
        KEYCLOAK_CLIENT_ID=CLIENT_ID,
    )
    return await make_api()


async def _emails(kc, token: str, tenant: str | None = None) -> list[str]:
    response = await kc.get("/users", token=token, tenant=tenant, params={"limit": 100})
    assert response.status_code == 200, response.text
    return sorted(u["email"] for u in response.json())


# --- user sync and roles ------------------------------------------------------------------------------


async def test_first_keycloak_user_of_a_tenant_becomes_admin_and_later_ones_plain_users(kc, realm):
    first = realm.mint("sub-first", email="First@Example.com")
    users = await kc.get("/users", token=first)
    assert users.status_code == 200, users.text
    [created] = users.json()
    assert created["email"] == "first@example.com" and created["role"] == "admin"
    assert created.get("emailConfirmedAt")  # Keycloak vouches for the address

    second = realm.mint("sub-second", email="second@example.com")
    assert_error(await kc.get("/users", token=second), 403, "Forbidden resource")
    listed = {u["email"]: u["role"] for u in (await kc.get("/users", token=first)).json()}
    assert listed == {"first@example.com": "admin", "second@example.com": "user"}


async def test_the_same_subject_is_one_local_user_on_every_request(kc, realm):
    admin = realm.mint("sub-admin", email="admin@example.com")
    for _ in range(3):
        assert (await kc.get("/users", token=admin)).status_code == 200
    # A later token of the same subject (e.g. after the email changed in Keycloak) keeps the same row.
    renamed = realm.mint("sub-admin", email="renamed@example.com")
    assert await _emails(kc, renamed) == ["admin@example.com"]


async def test_email_falls_back_to_an_address_like_username_then_to_the_subject(kc, realm):
    admin = realm.mint("sub-admin", email="admin@example.com")
    await kc.get("/users", token=admin)
    await kc.get("/users", token=realm.mint("sub-named", username="Named@Example.com"))
    # A plain username is not an address (UserResponse.email is format: email): the subject is used instead.
    await kc.get("/users", token=realm.mint("sub-plain", username="jdoe"))
    await kc.get("/users", token=realm.mint("sub-bare", extra={"preferred_username": None}))
    assert await _emails(kc, admin) == ["admin@example.com", "named@example.com", "sub-bare@keycloak",
                                        "sub-plain@keycloak"]


@pytest.mark.parametrize(
    "grant",
    [
        pytest.param({"roles": ["admin"]}, id="realm-role"),
        pytest.param({"client_roles": {CLIENT_ID: ["admin"]}}, id="client-role"),
    ],
)
async def test_an_admin_role_in_the_token_makes_a_later_user_admin(kc, realm, grant):
    await kc.get("/users", token=realm.mint("sub-owner", email="owner@example.com"))
    granted = realm.mint("sub-staff", email="staff@example.com", **grant)
    assert (await kc.get("/users", token=granted)).status_code == 200


async def test_admin_roles_of_other_clients_grant_nothing(kc, realm):
    await kc.get("/users", token=realm.mint("sub-owner", email="owner@example.com"))
    other_client = realm.mint("sub-staff", email="staff@example.com", client_roles={"some-other-app": ["admin"]})
    assert_error(await kc.get("/users", token=other_client), 403, "Forbidden resource")


async def test_an_existing_local_user_with_the_same_email_is_linked_not_duplicated(kc, realm):
    admin = realm.mint("sub-admin", email="admin@example.com")
    created = await kc.post("/users", token=admin, json={"email": "local@example.com", "password": "long-enough-1",
                                                         "role": "admin"})
    assert created.status_code == 201, created.text

    linked = realm.mint("sub-local", email="LOCAL@example.com")
    # The row's role is kept (admin here although the tenant already had users), and no second row appears.
    assert await _emails(kc, linked) == ["admin@example.com", "local@example.com"]
    got = await kc.get(f"/users/{created.json()['id']}", token=linked)
    assert got.status_code == 200 and got.json()["role"] == "admin"


async def test_locked_users_are_refused_whether_already_linked_or_not(kc, realm):
    admin = realm.mint("sub-admin", email="admin@example.com")
    staff = realm.mint("sub-staff", email="staff@example.com")
    assert (await kc.get("/users", token=admin)).status_code == 200
    assert_error(await kc.get("/users", token=staff), 403)  # linked now, as a plain user
    local = await kc.post("/users", token=admin, json={"email": "local@example.com", "password": "long-enough-1"})
    ids = {u["email"]: u["id"] for u in (await kc.get("/users", token=admin)).json()}

    assert (await kc.post(f"/users/{ids['staff@example.com']}/lock", token=admin)).status_code == 200
    assert (await kc.post(f"/users/{local.json()['id']}/lock", token=admin)).status_code == 200

    assert_error(await kc.get("/users", token=staff), 401, LOCKED)
    assert_error(await kc.get("/users", token=realm.mint("sub-local", email="local@example.com")), 401, LOCKED)

    assert (await kc.post(f"/users/{ids['staff@example.com']}/unlock", token=admin)).status_code == 200
    assert_error(await kc.get("/users", token=staff), 403)  # usable again (and still no admin)


# --- token verification ---------------------------------------------------------------------------------


FORGERIES = {
    "wrong-issuer": lambda realm: realm.mint("sub-admin", iss="http://127.0.0.1:1/realms/other"),
    "other-realm-of-the-same-server": lambda realm: realm.mint("sub-admin", iss=f"{realm.base_url}/realms/master"),
    "wrong-audience-and-azp": lambda realm: realm.mint("sub-admin", aud="another-client", azp="another-client"),
    "no-audience-no-azp": lambda realm: realm.mint("sub-admin", aud=None, azp=None),
    "expired": lambda realm: realm.mint("sub-admin", exp_delta=-60),
    "alg-none": lambda realm: realm.mint("sub-admin", alg="none"),
    "hs256-signed-with-the-realm-public-key": lambda realm: realm.mint("sub-admin", alg="HS256"),
    "hs256-signed-with-jwt-secret": lambda realm: realm.mint("sub-admin", alg="HS256", hmac_key=JWT_SECRET),
    "signed-by-a-key-the-realm-does-not-publish": lambda realm: realm.mint("sub-admin", signing_key=new_rsa_key()),
    "no-kid": lambda realm: realm.mint("sub-admin", kid=""),
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
async def test_forged_or_expired_tokens_are_refused(kc, realm, forge):
    genuine = realm.mint("sub-admin", email="admin@example.com")
    assert (await kc.get("/users", token=genuine)).status_code == 200  # the same subject is an admin
    assert_error(await kc.get("/users", token=forge(realm)), 401)


async def test_the_audience_may_be_the_client_itself_or_only_the_authorized_party(kc, realm):
    assert (await kc.get("/users", token=realm.mint("sub-a", aud=CLIENT_ID, azp="another-client"))).status_code == 200
    assert (await kc.get("/users", token=realm.mint("sub-a", aud="account", azp=CLIENT_ID))).status_code == 200


async def test_missing_or_non_bearer_credentials_are_401(kc, realm):
    assert_error(await kc.get("/users"), 401)
    assert_error(await kc.get("/users", headers={"Authorization": f"Basic {realm.mint('sub-a')}"}), 401)
    assert_error(await kc.get("/users", token="not-a-jwt"), 401)


async def test_an_unknown_kid_refetches_the_key_set_once_but_garbage_kids_cause_no_refetch_storm(kc, realm, clock):
    admin = realm.mint("sub-admin", email="admin@example.com")
    assert (await kc.get("/users", token=admin)).status_code == 200
    assert realm.jwks_requests == 1
    assert (await kc.get("/users", token=admin)).status_code == 200
    assert realm.jwks_requests == 1  # cached

    for n in range(20):
        assert_error(await kc.get("/users", token=realm.mint("sub-admin", kid=f"garbage-{n}")), 401)
    assert realm.jwks_requests == 1  # unknown kids right after a fetch do not reach Keycloak

    clock.advance(10)  # the realm rotates its key some time later
    new_kid = realm.rotate(keep_old=True)
    rotated = realm.mint("sub-admin", kid=new_kid)
    assert (await kc.get("/users", token=rotated)).status_code == 200
    assert realm.jwks_requests == 2  # fetched again for the new kid
    assert (await kc.get("/users", token=admin)).status_code == 200  # the old key is still published

    for n in range(20):
        assert_error(await kc.get("/users", token=realm.mint("sub-admin", kid=f"more-garbage-{n}")), 401)
    assert realm.jwks_requests == 2


async def test_a_key_the_realm_stopped_publishing_dies_when_the_cache_expires(kc, realm, clock):
    old = realm.mint("sub-admin", email="admin@example.com")
    assert (await kc.get("/users", token=old)).status_code == 200
    realm.rotate(keep_old=False)
    clock.advance(301)  # KEYCLOAK_JWKS_CACHE_SECONDS defaults to 300
    assert_error(await kc.get("/users", token=old), 401)
    assert realm.jwks_requests == 2
    assert (await kc.get("/users", token=realm.mint("sub-admin"))).status_code == 200


# --- tenancy and routes ----------------------------------------------------------------------------------


async def test_a_token_used_in_another_tenant_gets_a_separate_local_user_there(kc, realm):
    """§2.3/§3.2: the sync runs inside the request tenant, so one Keycloak identity has an independent
    user per tenant, each tenant with its own first-user admin."""
    owner = realm.mint("sub-owner", email="owner@example.com")
    staff = realm.mint("sub-staff", email="staff@example.com")
    await kc.get("/users", token=owner)
    assert_error(await kc.get("/users", token=staff), 403)  # a plain user in `default`

    in_acme = await kc.get("/users", token=staff, tenant="acme")  # first user of acme → its admin
    assert in_acme.status_code == 200, in_acme.text
    [acme_user] = in_acme.json()
    assert acme_user["email"] == "staff@example.com" and acme_user["role"] == "admin"

    default_ids = {u["email"]: u["id"] for u in (await kc.get("/users", token=owner)).json()}
    assert set(default_ids) == {"owner@example.com", "staff@example.com"}
    assert default_ids["staff@example.com"] != acme_user["id"]
    assert_error(await kc.get("/users", token=staff), 403)  # still a plain user in `default`
    # The acme admin cannot see default's users by id.
    assert_error(await kc.get(f"/users/{default_ids['owner@example.com']}", token=staff, tenant="acme"), 404)
    assert_error(await kc.get("/users", token=staff, tenant="evil"), 400)


async def test_locking_in_one_tenant_does_not_lock_the_same_identity_in_another(kc, realm):
    owner = realm.mint("sub-owner", email="owner@example.com")
    staff = realm.mint("sub-staff", email="staff@example.com")
    await kc.get("/users", token=owner)
    await kc.get("/users", token=staff)
    await kc.get("/users", token=staff, tenant="globex")
    staff_id = next(u["id"] for u in (await kc.get("/users", token=owner)).json() if u["email"] == "staff@example.com")
    assert (await kc.post(f"/users/{staff_id}/lock", token=owner)).status_code == 200

    assert_error(await kc.get("/users", token=staff), 401, LOCKED)
    assert (await kc.get("/users", token=staff, tenant="globex")).status_code == 200


async def test_password_routes_do_not_exist_in_keycloak_mode(kc, realm):
    credentials = {"email": "a@example.com", "password": "long-enough-1"}
    assert_error(await kc.post("/auth/login", json=credentials), 404)
    assert_error(await kc.post("/auth/register", json=credentials), 404)
    assert_error(await kc.post("/auth/request-password-reset", json={"email": "a@example.com"}), 404)



async def test_simultaneous_first_requests_create_one_user_per_subject_and_only_one_admin(kc, realm):
    same = realm.mint("sub-same", email="same@example.com")
    others = [realm.mint(f"sub-{n}", email=f"u{n}@example.com") for n in range(4)]
    answers = await asyncio.gather(*(kc.get("/users", token=token) for token in [same, same, same, *others]))
    # Exactly one admin: either `same` (three 200s) or one of the others (one 200); never a 500.
    statuses = sorted(a.status_code for a in answers)
    assert statuses in ([200] * 3 + [403] * 4, [200] + [403] * 6), [a.text for a in answers]

    admin = next(token for token, answer in zip([same, same, same, *others], answers) if answer.status_code == 200)
    listed = (await kc.get("/users", token=admin, params={"limit": 100})).json()
    assert sorted(u["email"] for u in listed) == ["same@example.com", *(f"u{n}@example.com" for n in range(4))]
    assert [u["role"] for u in listed].count("admin") == 1
