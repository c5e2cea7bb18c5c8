"""Who may see and act on what: another user's or another tenant's ids are 404 exactly like unknown ones, the
static API key (no user) gets 400 `User not authenticated`, admins may retry or cancel others' backorders
but see only their own subscriptions (behavior.md part A §6.2, §6.9)."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import assert_error
from tests.subscriptions.conftest import complete_profile, hetzner_plan, only_item, order


@pytest.fixture
async def world(cloud, admin, customer, fake_cloud):
    """The customer owns an active Hetzner subscription and a waiting backorder; others exist around them."""
    plan = await hetzner_plan(cloud, admin)
    active = await order(cloud, customer, plan["id"])
    item = await only_item(cloud, customer, active["id"])
    fake_cloud.hetzner.capacity[("cx22", "fsn1")] = False
    waiting = await order(cloud, customer, plan["id"], autoBackorder=True)
    backorder = (await cloud.get("/backorders", token=customer)).json()[0]
    other = await cloud.user_token(admin, "other@example.com")
    await complete_profile(cloud, other)
    acme_admin = await cloud.admin_token("boss@acme.example", tenant="acme")
    return {"active": active, "item": item, "waiting": waiting, "backorder": backorder, "other": other,
            "acme_admin": acme_admin}


def _own_data_operations(world) -> list[tuple[str, str, dict | None]]:
    sub, item, backorder = world["active"]["id"], world["item"]["id"], world["backorder"]["id"]
    items = f"/subscriptions/{sub}/items/{item}"
    return [
        ("GET", f"/subscriptions/{sub}", None),
        ("POST", f"/subscriptions/{sub}/cancel", {}),
        ("POST", f"/subscriptions/{world['waiting']['id']}/resume", {}),
        ("GET", f"/subscriptions/{sub}/items", None),
        ("GET", f"{items}/server-info", None),
        ("POST", f"{items}/actions/start", None),
        ("POST", f"{items}/actions/stop", None),
        ("POST", f"{items}/actions/restart", None),
        ("POST", f"/backorders/{backorder}/retry", {}),
        ("POST", f"/backorders/{backorder}/cancel", {}),
    ]


async def _call(api, method: str, path: str, body: dict | None, **kwargs):
    if body is None:
        return await api.request(method, path, **kwargs)
    return await api.request(method, path, json=body, **kwargs)


async def test_another_users_ids_are_not_found(cloud, world, fake_cloud):
    for method, path, body in _own_data_operations(world):
        response = await _call(cloud, method, path, body, token=world["other"])
        assert response.status_code == 404, (method, path, response.text)
        assert_error(response, 404)
    assert (await cloud.get("/subscriptions", token=world["other"])).json() == []
    assert (await cloud.get("/backorders", token=world["other"])).json() == []
    # nothing happened to the owner's things
    assert next(iter(fake_cloud.hetzner.servers.values()))["status"] == "running"
    assert (await cloud.get("/backorders", token=world["other"])).json() == []


async def test_another_tenants_ids_are_not_found(cloud, world):
    for method, path, body in _own_data_operations(world):
        response = await _call(cloud, method, path, body, token=world["acme_admin"], tenant="acme")
        assert_error(response, 404)
    assert (await cloud.get("/subscriptions", token=world["acme_admin"], tenant="acme")).json() == []


async def test_an_item_of_another_subscription_is_not_found(cloud, world, customer):
    path = f"/subscriptions/{world['waiting']['id']}/items/{world['item']['id']}/server-info"
    assert_error(await cloud.get(path, token=customer), 404, f"Subscription item {world['item']['id']} not found")


async def test_unknown_and_malformed_ids(cloud, world, customer):
    unknown = str(uuid.uuid4())
    assert_error(await cloud.get(f"/subscriptions/{unknown}", token=customer), 404,
                 f"Subscription with ID {unknown} not found")
    assert_error(await cloud.post(f"/backorders/{unknown}/retry", token=customer), 404,
                 f"Backorder with ID {unknown} not found")
    assert_error(await cloud.get(f"/subscriptions/{world['active']['id']}/items/{unknown}/server-info", token=customer),
                 404, f"Subscription item {unknown} not found")
    assert_error(await cloud.get("/subscriptions/not-a-uuid", token=customer), 400, "Validation failed (uuid v 4 is expected)")
    assert_error(await cloud.post("/backorders/123/cancel", token=customer), 400)
    assert_error(await cloud.post("/subscriptions", token=customer, json={"planId": unknown}), 404,
                 f"Service plan with ID {unknown} not found")


async def test_admins_see_only_their_own_subscriptions_but_may_handle_any_backorder(cloud, world, admin):
    assert_error(await cloud.get(f"/subscriptions/{world['active']['id']}", token=admin), 404)
    assert (await cloud.get("/subscriptions", token=admin)).json() == []
    assert (await cloud.get("/backorders", token=admin)).json() == []
    cancelled = await cloud.post(f"/backorders/{world['backorder']['id']}/cancel", token=admin)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


async def test_the_api_key_is_not_a_user(cloud, world, env, make_api):
    env.update(AUTHENTICATION_METHOD="api-key", STATIC_API_KEY="key-1")
    keyed = await make_api()
    operations = [*_own_data_operations(world), ("GET", "/subscriptions", None), ("GET", "/backorders", None),
                  ("POST", "/subscriptions", {"planId": str(uuid.uuid4())}), ("GET", "/customer-profile", None),
                  ("POST", "/customer-profile", {"city": "Berlin"})]
    for method, path, body in operations:
        assert_error(await _call(keyed, method, path, body, token="key-1"), 400, "User not authenticated")


async def test_anonymous_callers_are_401(cloud, world):
    for method, path, body in _own_data_operations(world):
        assert_error(await _call(cloud, method, path, body), 401)
