"""Admin user management and tenant isolation (behavior.md part A §2.8, §3)."""

from __future__ import annotations

import uuid

from tests.helpers import assert_error


async def _user_id(api, admin: str, email: str, tenant: str | None = None) -> str:
    users = (await api.get("/users", token=admin, tenant=tenant, params={"limit": 100})).json()
    return next(u["id"] for u in users if u["email"] == email)


async def test_admin_crud_of_users(api, smtp_sink):
    admin = await api.admin_token()
    created = await api.post("/users", token=admin, json={"email": "Staff@Example.com", "password": "long-enough-1", "role": "admin"})
    assert created.status_code == 201
    staff = created.json()
    assert staff["email"] == "staff@example.com" and staff["role"] == "admin"
    assert "emailConfirmedAt" not in staff or staff["emailConfirmedAt"] is None
    assert smtp_sink.code_for("staff@example.com")

    got = await api.get(f"/users/{staff['id']}", token=admin)
    assert got.status_code == 200 and got.json()["id"] == staff["id"]

    assert_error(await api.post("/users", token=admin, json={"email": "staff@example.com", "password": "long-enough-1"}), 409,
                 "User with this email already exists")

    renamed = await api.post(f"/users/{staff['id']}", token=admin, json={"email": "renamed@example.com", "role": "user"})
    assert renamed.status_code == 200
    assert renamed.json()["email"] == "renamed@example.com" and renamed.json()["role"] == "user"
    # A changed address has to be confirmed again, with a code mailed to the new address.
    assert renamed.json().get("emailConfirmedAt") is None
    assert smtp_sink.code_for("renamed@example.com")
    assert_error(await api.post(f"/users/{staff['id']}", token=admin, json={"email": "admin@example.com"}), 409)

    listing = await api.get("/users", token=admin, params={"limit": 1, "offset": 0})
    assert [u["email"] for u in listing.json()] == ["renamed@example.com"]  # newest first
    assert len((await api.get("/users", token=admin, params={"limit": 1, "offset": 1})).json()) == 1

    assert (await api.delete(f"/users/{staff['id']}", token=admin)).status_code == 204
    assert_error(await api.get(f"/users/{staff['id']}", token=admin), 404, "User not found")
    assert_error(await api.delete(f"/users/{staff['id']}", token=admin), 404, "User not found")


async def test_user_ids_are_validated_before_any_query(api):
    admin = await api.admin_token()
    assert_error(await api.get("/users/not-a-uuid", token=admin), 400)
    assert_error(await api.get("/users", token=admin, params={"limit": "abc"}), 400)
    assert_error(await api.post("/users", token=admin, json={"email": "x@example.com", "password": "long-enough-1", "role": "root"}), 400)


async def test_tenant_header_selects_the_tenant_and_unknown_tenants_are_400(api):
    assert_error(await api.get("/users", tenant="evil"), 400)
    assert_error(await api.get("/health", tenant="evil"), 400)
    assert (await api.get("/health", tenant="acme")).status_code == 200
    assert (await api.get("/health", tenant="")).status_code == 200  # empty → default


async def test_tenants_are_isolated(api):
    default_admin = await api.admin_token("admin@example.com")
    acme_admin = await api.admin_token("admin@example.com", tenant="acme")  # same email, another tenant: its own first admin
    default_user_id = await _user_id(api, default_admin, "admin@example.com")

    # A token of one tenant is not valid in another.
    assert_error(await api.get("/users", token=default_admin, tenant="acme"), 401, "Session is no longer valid.")
    # Another tenant's ids look exactly like missing ones.
    assert_error(await api.get(f"/users/{default_user_id}", token=acme_admin, tenant="acme"), 404, "User not found")
    assert_error(await api.post(f"/users/{default_user_id}/lock", token=acme_admin, tenant="acme"), 404)
    assert_error(await api.delete(f"/users/{default_user_id}", token=acme_admin, tenant="acme"), 404)
    assert [u["email"] for u in (await api.get("/users", token=acme_admin, tenant="acme")).json()] == ["admin@example.com"]
    assert_error(await api.get(f"/users/{uuid.uuid4()}", token=acme_admin, tenant="acme"), 404)
    # Logging in needs the right tenant too.
    assert_error(await api.post("/auth/login", tenant="globex", json={"email": "admin@example.com", "password": "correct-horse-1"}), 401)


async def test_api_key_mode(api, make_api, env):
    env.update(AUTHENTICATION_METHOD="api-key", STATIC_API_KEY="s3cr3t-key")
    keyed = await make_api()
    assert_error(await keyed.get("/users"), 401, "Missing authorization header")
    assert_error(await keyed.get("/users", headers={"Authorization": "s3cr3t-key"}), 401, "Invalid authorization header format")
    assert_error(await keyed.get("/users", headers={"Authorization": "Bearer wrong"}), 401, "Invalid API key")
    assert_error(await keyed.get("/users", headers={"Authorization": "bearer s3cr3t-key"}), 401, "Invalid API key")
    # The key authenticates (Bearer or ApiKey), but /users and /auth do not exist in api-key mode.
    assert_error(await keyed.get("/users", headers={"Authorization": "ApiKey s3cr3t-key"}), 404)
    assert_error(await keyed.post("/auth/login", json={"email": "a@example.com", "password": "whatever-1"}), 404)
    assert (await keyed.get("/config")).json()["authenticationMethod"] == "api-key"

    env.update(STATIC_API_KEY_TENANT_ID="acme")
    bound = await make_api()
    assert_error(await bound.get("/users", headers={"Authorization": "Bearer s3cr3t-key"}, tenant="globex"), 403, "Access denied")
    assert_error(await bound.get("/users", headers={"Authorization": "Bearer s3cr3t-key"}, tenant="acme"), 404)

    env.update(STATIC_API_KEY=None, AUTHENTICATION_METHOD="api-key", STATIC_API_KEY_TENANT_ID=None)
    unset = await make_api()
    assert_error(await unset.get("/users", headers={"Authorization": "Bearer x"}), 401)
