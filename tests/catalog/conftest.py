"""Helpers of the catalog tests: an admin, a plain user, the fake clouds wired in, and small factories
that go through the HTTP API like a client would."""

from __future__ import annotations

import pytest

PLAN_DEFAULTS = {"name": "Starter", "billingIntervalType": "month", "billingIntervalValue": 1}


@pytest.fixture
async def admin(api) -> str:
    return await api.admin_token()


@pytest.fixture
async def user(api, admin) -> str:
    return await api.user_token(admin)


@pytest.fixture
async def cloud_api(env, make_api, fake_cloud):
    """The app with both built-in providers pointed at the local fakes (fresh state, no client retries)."""
    fake_cloud.reset()
    env.update(
        HETZNER_API_TOKEN=fake_cloud.hetzner_token, HETZNER_API_URL=fake_cloud.hetzner_url,
        DIGITALOCEAN_API_TOKEN=fake_cloud.do_token, DIGITALOCEAN_API_URL=fake_cloud.do_url,
        PROVIDER_MAX_RETRIES="0",
    )
    return await make_api()


async def create_type(api, token: str, *, tenant: str | None = None, **fields) -> dict:
    body = {"key": "vps", "name": "Virtual server", "provider": "manual", **fields}
    response = await api.post("/service-types", token=token, tenant=tenant, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def create_plan(api, token: str, service_type_id: str, *, tenant: str | None = None, **fields) -> dict:
    body = {"serviceTypeId": service_type_id, **PLAN_DEFAULTS, **fields}
    response = await api.post("/service-plans", token=token, tenant=tenant, json=body)
    assert response.status_code == 201, response.text
    return response.json()
