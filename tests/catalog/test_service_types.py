"""Service types: CRUD, validation, 404/409, roles and tenant isolation (behavior.md part A §4.1, §4.2)."""

from __future__ import annotations

import uuid

import pytest

from tests.catalog.conftest import create_plan, create_type
from tests.helpers import assert_error


async def test_crud_of_service_types(api, admin):
    created = await api.post("/service-types", token=admin, json={"key": "vps", "name": "VPS", "provider": "hetzner"})
    assert created.status_code == 201
    body = created.json()
    assert body["key"] == "vps" and body["provider"] == "hetzner"
    # without a configSchema a provider-backed type gets its provider's, with the provider's price field
    assert body["configSchema"]["basePriceFromField"] == "serverType"
    assert body["isActive"] is True and body["description"] is None
    assert "tenantId" not in body

    got = await api.get(f"/service-types/{body['id']}", token=admin)
    assert got.status_code == 200 and got.json() == body

    updated = await api.post(f"/service-types/{body['id']}", token=admin,
                             json={"name": "Cloud VPS", "isActive": False, "configSchema": {"properties": {}}})
    assert updated.status_code == 200
    assert updated.json()["name"] == "Cloud VPS" and updated.json()["isActive"] is False
    assert updated.json()["provider"] == "hetzner" and updated.json()["key"] == "vps"  # untouched
    assert updated.json()["configSchema"] == {"properties": {}}
    assert updated.json()["updatedAt"] >= body["updatedAt"]

    second = await create_type(api, admin, key="mail", name="Mail")
    listing = await api.get("/service-types", token=admin)
    assert [t["key"] for t in listing.json()] == ["mail", "vps"]  # newest first, inactive included
    assert [t["key"] for t in (await api.get("/service-types", token=admin, params={"limit": 1, "offset": 1})).json()] == ["vps"]

    assert (await api.delete(f"/service-types/{second['id']}", token=admin)).status_code == 204
    assert_error(await api.get(f"/service-types/{second['id']}", token=admin), 404,
                 f"Service type with ID {second['id']} not found")
    assert_error(await api.delete(f"/service-types/{second['id']}", token=admin), 404)
    assert_error(await api.post(f"/service-types/{uuid.uuid4()}", token=admin, json={"name": "x"}), 404)


async def test_duplicate_key_is_a_conflict_within_a_tenant_only(api, admin):
    await create_type(api, admin, key="vps")
    assert_error(await api.post("/service-types", token=admin, json={"key": "vps", "name": "Again", "provider": "x"}),
                 409, "A service type with key 'vps' already exists")
    acme_admin = await api.admin_token(tenant="acme")
    await create_type(api, acme_admin, tenant="acme", key="vps")  # another tenant has its own keys


@pytest.mark.parametrize("body, message", [
    ({"name": "N", "provider": "p"}, None),  # key missing
    ({"key": "k", "name": "N", "provider": 5}, None),  # wrong type
    ({"key": "k", "name": "N", "provider": "p", "tenantId": "acme"}, None),  # unknown property
    ({"key": "k", "name": "N", "provider": "p", "configSchema": []}, None),
    ({"key": " ", "name": "N", "provider": "p"}, "Key is required"),
    ({"key": "k" * 101, "name": "N", "provider": "p"}, "Key must be at most 100 characters"),
    ({"key": "k", "name": "", "provider": "p"}, "Name is required"),
    ({"key": "k", "name": "N", "provider": "p" * 101}, "Provider must be at most 100 characters"),
    ({"key": "k\u0000", "name": "N", "provider": "p"}, "Key must not contain NUL characters"),
    ({"key": "k", "name": "N", "provider": "p", "configSchema": {"a": "\u0000"}},
     "Config schema must not contain NUL characters"),
])
async def test_invalid_service_types_are_rejected(api, admin, body, message):
    assert_error(await api.post("/service-types", token=admin, json=body), 400, message)


async def test_the_key_cannot_be_changed_and_ids_must_be_uuids(api, admin):
    service_type = await create_type(api, admin)
    assert_error(await api.post(f"/service-types/{service_type['id']}", token=admin, json={"key": "other"}), 400)
    assert_error(await api.get("/service-types/not-a-uuid", token=admin), 400)
    assert_error(await api.delete("/service-types/1234", token=admin), 400)
    assert_error(await api.get("/service-types", token=admin, params={"limit": "ten"}), 400)


async def test_a_type_with_plans_cannot_be_deleted(api, admin):
    service_type = await create_type(api, admin)
    plan = await create_plan(api, admin, service_type["id"])
    await create_plan(api, admin, service_type["id"], name="Second")
    refused = await api.delete(f"/service-types/{service_type['id']}", token=admin)
    assert_error(refused, 409, f"Service type with ID {service_type['id']} is still used by 2 service plans; "
                               "delete its service plans first")
    assert (await api.get(f"/service-types/{service_type['id']}", token=admin)).status_code == 200
    for listed in (await api.get("/service-plans", token=admin)).json():
        assert (await api.delete(f"/service-plans/{listed['id']}", token=admin)).status_code == 204
    assert (await api.delete(f"/service-types/{service_type['id']}", token=admin)).status_code == 204
    assert_error(await api.get(f"/service-plans/{plan['id']}", token=admin), 404)


async def test_role_ladder(api, admin, user):
    service_type = await create_type(api, admin)
    path = f"/service-types/{service_type['id']}"
    # anonymous: 401 everywhere
    for method, url in (("GET", "/service-types"), ("GET", path), ("POST", "/service-types"), ("DELETE", path),
                        ("GET", "/service-types/providers")):
        assert_error(await api.request(method, url, json={}), 401)
    assert_error(await api.get("/service-types", token="not-a-jwt"), 401)
    # a plain user reads ...
    assert (await api.get("/service-types", token=user)).status_code == 200
    assert (await api.get(path, token=user)).status_code == 200
    assert (await api.get("/service-types/providers", token=user)).status_code == 200
    # ... but does not write
    assert_error(await api.post("/service-types", token=user, json={"key": "x", "name": "x", "provider": "x"}), 403,
                 "Forbidden resource")
    assert_error(await api.post(path, token=user, json={"name": "x"}), 403, "Forbidden resource")
    assert_error(await api.delete(path, token=user), 403, "Forbidden resource")


async def test_the_api_key_acts_as_admin(env, make_api):
    env.update(AUTHENTICATION_METHOD="api-key", STATIC_API_KEY="catalog-key")
    keyed = await make_api()
    created = await keyed.post("/service-types", token="catalog-key", json={"key": "k", "name": "N", "provider": "p"})
    assert created.status_code == 201
    assert (await keyed.get("/service-types", token="catalog-key")).json()[0]["id"] == created.json()["id"]


async def test_tenants_are_isolated(api, admin):
    service_type = await create_type(api, admin)
    acme_admin = await api.admin_token(tenant="acme")
    path = f"/service-types/{service_type['id']}"
    message = f"Service type with ID {service_type['id']} not found"
    assert_error(await api.get(path, token=acme_admin, tenant="acme"), 404, message)
    assert_error(await api.post(path, token=acme_admin, tenant="acme", json={"name": "stolen"}), 404, message)
    assert_error(await api.delete(path, token=acme_admin, tenant="acme"), 404, message)
    assert (await api.get("/service-types", token=acme_admin, tenant="acme")).json() == []
    # nor can another tenant hang a plan on it
    assert_error(await api.post("/service-plans", token=acme_admin, tenant="acme",
                                json={"serviceTypeId": service_type["id"], "name": "P", "billingIntervalType": "month",
                                      "billingIntervalValue": 1}), 404, message)
    assert (await api.get(path, token=admin)).json()["name"] == "Virtual server"


async def test_the_same_key_created_concurrently_gives_one_type_and_conflicts(api, admin):
    """Ten simultaneous creates of one key: the unique constraint lets exactly one in; the others answer 409
    (whether they lose at the look-up or at the insert), never 500."""
    import asyncio

    body = {"key": "raced", "name": "Raced", "provider": "manual"}
    responses = await asyncio.gather(*(api.post("/service-types", token=admin, json=body) for _ in range(10)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 9, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409, "A service type with key 'raced' already exists")
    listed = (await api.get("/service-types", token=admin)).json()
    assert [t["key"] for t in listed].count("raced") == 1
