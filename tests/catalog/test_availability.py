"""Availability checks through the service type's provider (behavior.md part A §4.7 with D18)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from decabill import db
from models.catalog import AvailabilitySnapshot
from tests.catalog.conftest import create_type
from tests.helpers import assert_error

ROUTES = ("/availability/check", "/availability/alternatives")


@pytest.fixture
async def hetzner_type(cloud_api) -> tuple[str, dict]:
    admin = await cloud_api.admin_token()
    return admin, await create_type(cloud_api, admin, key="h", provider="hetzner")


async def _check(api, token, service_type, region, server_type, route=ROUTES[0], **extra):
    response = await api.post(route, token=token, json={"serviceTypeId": service_type["id"], "region": region,
                                                         "serverType": server_type, **extra})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("route", ROUTES)
async def test_hetzner_rules_in_the_reference_order(cloud_api, fake_cloud, hetzner_type, route):
    admin, service_type = hetzner_type
    check = lambda region, size: _check(cloud_api, admin, service_type, region, size, route)  # noqa: E731
    assert await check("nbg1", "cx22") == {"isAvailable": True}
    assert await check("fsn1", "cx99") == {
        "isAvailable": False, "reason": "Server type not found",
        "alternatives": {"availableTypes": ["cpx11", "cax11", "cx22", "cx32"], "availableRegions": []}}
    assert await check("fsn1", "cx11") == {
        "isAvailable": False, "reason": "Server type deprecated",
        "alternatives": {"availableTypes": ["cpx11", "cax11", "cx22", "cx32"], "availableRegions": []}}
    assert await check("hel1", "cax11") == {
        "isAvailable": False, "reason": "Server type not available in region",
        "alternatives": {"availableTypes": ["cpx11", "cx22"], "availableRegions": ["fsn1", "nbg1"]}}

    # live capacity: sold out in one location (the server type's `locations[].available`)
    fake_cloud.hetzner.capacity[("cx22", "fsn1")] = False
    assert await check("fsn1", "cx22") == {
        "isAvailable": False, "reason": "Server type temporarily out of capacity in region",
        "alternatives": {"availableTypes": ["cpx11", "cax11", "cx32"], "availableRegions": ["nbg1", "hel1"]}}

    # the account's server limit (GET /v1/limits; a 404 there means "unknown", tolerated above)
    fake_cloud.hetzner.max_servers = 0
    limited = await check("nbg1", "cx22")
    assert limited["isAvailable"] is False and limited["reason"] == "Provider account limit reached"
    fake_cloud.hetzner.max_servers = 5
    assert await check("nbg1", "cx22") == {"isAvailable": True}


async def test_every_check_asks_the_provider_and_leaves_a_snapshot(cloud_api, fake_cloud, hetzner_type):
    admin, service_type = hetzner_type
    await cloud_api.get("/service-types/providers/hetzner/server-types", token=admin)  # fills the list cache
    fake_cloud.hetzner.capacity[("cx22", "hel1")] = False
    result = await _check(cloud_api, admin, service_type, "hel1", "cx22", requestedConfig={"provider": "digital-ocean"})
    assert result["reason"] == "Server type temporarily out of capacity in region"  # not the cached answer
    await _check(cloud_api, admin, service_type, "fsn1", "cx22")

    async with db.transaction() as session:
        snapshots = (await session.execute(select(AvailabilitySnapshot).order_by(AvailabilitySnapshot.captured_at))).scalars().all()
    assert [(s.provider, s.region, s.server_type, s.is_available, s.tenant_id) for s in snapshots] == [
        ("hetzner", "hel1", "cx22", False, "default"), ("hetzner", "fsn1", "cx22", True, "default")]
    assert snapshots[0].reason == "Server type temporarily out of capacity in region"
    assert snapshots[0].service_type_id == uuid.UUID(service_type["id"])
    assert snapshots[0].raw_response["serverType"]["name"] == "cx22"


async def test_digitalocean_is_really_checked(cloud_api, fake_cloud):
    admin = await cloud_api.admin_token()
    service_type = await create_type(cloud_api, admin, key="do", provider="digital-ocean")
    assert await _check(cloud_api, admin, service_type, "fra1", "s-4vcpu-8gb") == {"isAvailable": True}
    assert await _check(cloud_api, admin, service_type, "sfo3", "s-4vcpu-8gb") == {
        "isAvailable": False, "reason": "Server type not available in region",
        "alternatives": {"availableTypes": ["s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-4gb"], "availableRegions": ["fra1", "nyc3"]}}
    fake_cloud.digitalocean.capacity[("s-4vcpu-8gb", "fra1")] = False
    gone = await _check(cloud_api, admin, service_type, "fra1", "s-4vcpu-8gb")
    assert gone["isAvailable"] is False and gone["alternatives"]["availableRegions"] == ["nyc3"]
    unknown = await _check(cloud_api, admin, service_type, "fra1", "m-64vcpu")
    assert unknown["reason"] == "Server type not found"


async def test_products_without_a_provider_are_always_available(api, admin):
    service_type = await create_type(api, admin, provider="manual")
    assert await _check(api, admin, service_type, "anywhere", "anything") == {"isAvailable": True}


async def test_errors(api, admin, user, env, make_api, fake_cloud):
    hetzner = await create_type(api, admin, key="h", provider="hetzner")
    body = {"serviceTypeId": hetzner["id"], "region": "fsn1", "serverType": "cx22"}
    assert_error(await api.post(ROUTES[0], token=admin, json=body), 400, "HETZNER_API_TOKEN environment variable is not set")
    missing = str(uuid.uuid4())
    assert_error(await api.post(ROUTES[0], token=admin, json={**body, "serviceTypeId": missing}), 404,
                 f"Service type with ID {missing} not found")
    assert_error(await api.post(ROUTES[1], token=admin, json={**body, "serviceTypeId": "h"}), 400)
    assert_error(await api.post(ROUTES[0], token=admin, json={"serviceTypeId": hetzner["id"], "region": "fsn1"}), 400)
    assert_error(await api.post(ROUTES[0], token=admin, json={**body, "requestedConfig": "x"}), 400)
    assert_error(await api.post(ROUTES[0], json=body), 401)

    fake_cloud.reset()
    env.update(HETZNER_API_TOKEN=fake_cloud.hetzner_token, HETZNER_API_URL=fake_cloud.hetzner_url, PROVIDER_MAX_RETRIES="0")
    cloud = await make_api()
    assert (await cloud.post(ROUTES[0], token=user, json=body)).json() == {"isAvailable": True}  # any authenticated caller
    fake_cloud.hetzner.rate_limit()
    assert_error(await cloud.post(ROUTES[0], token=user, json=body), 400,
                 "Failed to check availability: limit of 3600 requests per hour reached")
    fake_cloud.hetzner.fail_next("service_error", 503, "maintenance", path="/v1/limits")
    assert_error(await cloud.post(ROUTES[0], token=user, json=body), 400, "Failed to check availability: maintenance")
    # another tenant's service type is unknown there
    acme = await cloud.admin_token(tenant="acme")
    assert_error(await cloud.post(ROUTES[0], token=acme, tenant="acme", json=body), 404)
