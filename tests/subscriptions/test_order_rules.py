"""Ordering rules: the effective configuration and its checks, geography, unconfigured providers (D24),
hostname exhaustion (D21) and provider errors on server control (behavior.md part A §6.3, §6.7, §6.8)."""

from __future__ import annotations

import pytest

from decabill.subscriptions import hostnames
from tests.catalog.conftest import create_plan, create_type
from tests.helpers import assert_error
from tests.subscriptions.conftest import hetzner_plan, manual_plan, only_item, order


async def test_the_configuration_is_checked_against_the_merged_schema(cloud, admin, customer):
    schema = {"required": ["tier"], "properties": {"tier": {"type": "string", "enum": ["s", "m"]},
                                                    "replicas": {"type": "integer"}, "backup": {"type": "boolean"}}}
    plan = await hetzner_plan(cloud, admin, type_fields={"configSchema": schema})
    body = assert_error(await cloud.post("/subscriptions", token=customer, json={
        "planId": plan["id"], "requestedConfig": {"replicas": "two", "backup": 1, "serverType": 5}}), 400)
    problems = body["message"].split("; ")
    assert problems[0] == "Missing required config field: tier"
    assert sorted(problems[1:]) == [  # the provider's schema and the type's own rules, all at once
        "Invalid type for config field backup: expected boolean",
        "Invalid type for config field replicas: expected integer",
        "Invalid type for config field serverType: expected string",
    ]
    assert (await cloud.get("/subscriptions", token=customer)).json() == []
    ok = await order(cloud, customer, plan["id"], requestedConfig={"tier": "m", "replicas": 2, "extra": {"any": "thing"}})
    assert ok["status"] == "active"


async def test_location_is_the_customers_only_where_the_plan_allows_it(cloud, admin, customer, fake_cloud):
    fixed = await hetzner_plan(cloud, admin)
    await order(cloud, customer, fixed["id"], requestedConfig={"location": "nbg1"})
    assert [s["location"]["name"] for s in fake_cloud.hetzner.servers.values()] == ["fsn1"]  # dropped

    service_type_id = fixed["serviceTypeId"]
    choosable = await create_plan(cloud, admin, service_type_id, name="Pick", basePrice="10",
                                  allowCustomerLocationSelection=True,
                                  providerConfigDefaults={"serverType": "cx22", "location": "fsn1", "service": "controller"})
    await order(cloud, customer, choosable["id"], requestedConfig={"location": "nbg1"})
    assert sorted(s["location"]["name"] for s in fake_cloud.hetzner.servers.values()) == ["fsn1", "nbg1"]
    assert_error(await cloud.post("/subscriptions", token=customer, json={
        "planId": choosable["id"], "requestedConfig": {"location": "mars1"}}), 400,
        "Invalid value for config field location: must be one of allowed options")


async def test_builtin_defaults_fill_service_server_type_and_geography(cloud, admin, customer, fake_cloud):
    service_type = await create_type(cloud, admin, key="bare", name="Bare", provider="hetzner")
    plan = await create_plan(cloud, admin, service_type["id"], name="Bare", basePrice="3")
    subscription = await order(cloud, customer, plan["id"])
    server = next(iter(fake_cloud.hetzner.servers.values()))
    assert server["server_type"]["name"] == "cx22" and server["location"]["name"] == "fsn1"
    assert (await only_item(cloud, customer, subscription["id"]))["service"] == "controller"


async def test_a_provider_without_token_is_400_or_a_backorder(cloud, env, make_api, admin, customer, fake_cloud):
    env.update(HETZNER_API_TOKEN=None)
    api = await make_api()
    plan = await hetzner_plan(api, admin)  # allowed before the token is set (D24)
    assert_error(await api.post("/subscriptions", token=customer, json={"planId": plan["id"]}), 400,
                 "HETZNER_API_TOKEN environment variable is not set")
    waiting = await order(api, customer, plan["id"], autoBackorder=True)
    assert waiting["status"] == "pending_backorder"
    backorder = (await api.get("/backorders", token=customer)).json()[0]
    assert backorder["failureReason"] == "HETZNER_API_TOKEN environment variable is not set"


async def test_hostname_exhaustion_is_503(cloud, admin, customer, fake_cloud, monkeypatch):
    plan = await hetzner_plan(cloud, admin)
    await order(cloud, customer, plan["id"])
    taken = next(iter(fake_cloud.hetzner.servers.values()))["name"]
    monkeypatch.setattr(hostnames, "candidate", lambda: taken)  # every candidate is already reserved
    assert_error(await cloud.post("/subscriptions", token=customer, json={"planId": plan["id"]}), 503,
                 "Could not reserve a unique hostname after 50 attempts; please try again")
    assert len(fake_cloud.hetzner.servers) == 1  # no server was created without a hostname


async def test_server_control_errors(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin)
    subscription = await order(cloud, customer, plan["id"])
    item = await only_item(cloud, customer, subscription["id"])
    base = f"/subscriptions/{subscription['id']}/items/{item['id']}"
    server_id = next(iter(fake_cloud.hetzner.servers))

    fake_cloud.hetzner.fail_next("service_error", 503, "maintenance", method="POST")
    assert_error(await cloud.post(f"{base}/actions/stop", token=customer), 400, "Failed to stop server: maintenance")
    fake_cloud.hetzner.servers.pop(server_id)  # deleted behind our back
    assert_error(await cloud.get(f"{base}/server-info", token=customer), 400, f"Server {server_id} not found")


async def test_an_unprovisioned_item_cannot_be_controlled(cloud, admin, customer):
    plan = await manual_plan(cloud, admin)
    subscription = await order(cloud, customer, plan["id"])
    item = await only_item(cloud, customer, subscription["id"])
    for method, suffix in (("GET", "server-info"), ("POST", "actions/start")):
        response = await cloud.request(method, f"/subscriptions/{subscription['id']}/items/{item['id']}/{suffix}",
                                       token=customer)
        assert_error(response, 400, "Service is not provisioned yet")


@pytest.mark.parametrize("body", [{"planId": "x"}, {}, {"planId": "00000000-0000-4000-8000-000000000000", "extra": 1},
                                  {"planId": "00000000-0000-4000-8000-000000000000", "autoBackorder": "yes"}])
async def test_malformed_orders_are_400(cloud, customer, body):
    assert_error(await cloud.post("/subscriptions", token=customer, json=body), 400)


async def test_subscription_numbers_count_up_per_tenant(cloud, admin, customer):
    plan = await manual_plan(cloud, admin)
    numbers = [(await order(cloud, customer, plan["id"]))["number"] for _ in range(3)]
    assert numbers == ["SUB-000001", "SUB-000002", "SUB-000003"]
    listed = (await cloud.get("/subscriptions", token=customer, params={"limit": 2})).json()
    assert [s["number"] for s in listed] == ["SUB-000003", "SUB-000002"]  # newest first, paged
    assert [s["number"] for s in (await cloud.get("/subscriptions", token=customer, params={"offset": 2})).json()] == [
        "SUB-000001"]
