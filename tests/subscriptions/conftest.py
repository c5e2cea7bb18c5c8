"""Fixtures of the ordering tests: the app wired to the Hetzner, DigitalOcean and Cloudflare fakes, an admin
who sets up the catalog, a customer with a complete profile, and small helpers that act like a client."""

from __future__ import annotations

import pytest

from tests.catalog.conftest import create_plan, create_type

PROFILE = {
    "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com", "addressLine1": "1 Analytical Way",
    "postalCode": "10115", "city": "Berlin", "country": "DE",
}


@pytest.fixture
async def cloud(env, make_api, fake_cloud):
    """The app with both providers and Cloudflare DNS pointed at the local fakes (fresh fake state)."""
    fake_cloud.reset()
    env.update(
        HETZNER_API_TOKEN=fake_cloud.hetzner_token, HETZNER_API_URL=fake_cloud.hetzner_url,
        DIGITALOCEAN_API_TOKEN=fake_cloud.do_token, DIGITALOCEAN_API_URL=fake_cloud.do_url,
        CLOUDFLARE_API_TOKEN=fake_cloud.cf_token, CLOUDFLARE_ZONE_ID=fake_cloud.cf_zone_id,
        CLOUDFLARE_API_URL=fake_cloud.cf_url, DNS_BASE_DOMAIN="decabill.test",
        PROVIDER_MAX_RETRIES="0", PROVISIONING_IP_POLL_INTERVAL_MS="10", PROVISIONING_IP_POLL_ATTEMPTS="5",
    )
    return await make_api()


@pytest.fixture
async def admin(cloud) -> str:
    return await cloud.admin_token()


@pytest.fixture
async def customer(cloud, admin) -> str:
    token = await cloud.user_token(admin, "customer@example.com")
    await complete_profile(cloud, token)
    return token


async def complete_profile(api, token: str, tenant: str | None = None, **overrides) -> dict:
    response = await api.post("/customer-profile", token=token, tenant=tenant, json={**PROFILE, **overrides})
    assert response.status_code == 200, response.text
    return response.json()


async def provider_schema(api, token: str, provider: str) -> dict:
    details = (await api.get("/service-types/providers", token=token)).json()
    return next(p for p in details if p["id"] == provider)["configSchema"]


async def hetzner_plan(api, admin: str, *, tenant: str | None = None, type_fields: dict | None = None,
                       **plan_fields) -> dict:
    # `configSchema: {}` (no basePriceFromField): the plan's basePrice is the operator's deliberate price
    service_type = await create_type(api, admin, tenant=tenant, key="controller-hetzner", name="Agent controller",
                                     provider="hetzner", **{"configSchema": {}, **(type_fields or {})})
    defaults = {"serverType": "cx22", "location": "fsn1", "service": "controller"}
    fields = {"name": "Controller S", "basePrice": "10.00", "providerConfigDefaults": defaults, **plan_fields}
    return await create_plan(api, admin, service_type["id"], tenant=tenant, **fields)


async def digitalocean_plan(api, admin: str, **plan_fields) -> dict:
    service_type = await create_type(api, admin, key="manager-do", name="Agent manager", provider="digital-ocean",
                                     configSchema={})
    defaults = {"serverType": "s-1vcpu-1gb", "region": "fra1", "service": "manager"}
    fields = {"name": "Manager S", "basePrice": "12.00", "providerConfigDefaults": defaults, **plan_fields}
    return await create_plan(api, admin, service_type["id"], **fields)


async def manual_plan(api, admin: str, *, tenant: str | None = None, **plan_fields) -> dict:
    service_type = await create_type(api, admin, tenant=tenant, key="support", name="Support", provider="manual")
    fields = {"name": "Support hours", "basePrice": "30.00", **plan_fields}
    return await create_plan(api, admin, service_type["id"], tenant=tenant, **fields)


async def order(api, token: str, plan_id: str, *, tenant: str | None = None, expect: int = 201, **body):
    response = await api.post("/subscriptions", token=token, tenant=tenant, json={"planId": plan_id, **body})
    assert response.status_code == expect, response.text
    return response.json()


async def only_item(api, token: str, subscription_id: str) -> dict:
    items = (await api.get(f"/subscriptions/{subscription_id}/items", token=token)).json()
    assert len(items) == 1, items
    return items[0]
