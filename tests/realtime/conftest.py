"""Fixtures of the real-time tests: the HTTP app and the gateway's providers pointed at the local fakes."""

from __future__ import annotations

import pytest

from tests.subscriptions.conftest import hetzner_plan


@pytest.fixture
async def cloud(env, make_api, fake_cloud):
    """The HTTP app and the gateway's providers pointed at the local fakes (fresh fake state)."""
    fake_cloud.reset()
    env.update(
        HETZNER_API_TOKEN=fake_cloud.hetzner_token, HETZNER_API_URL=fake_cloud.hetzner_url,
        DIGITALOCEAN_API_TOKEN=fake_cloud.do_token, DIGITALOCEAN_API_URL=fake_cloud.do_url,
        DNS_BASE_DOMAIN="decabill.test", PROVIDER_MAX_RETRIES="0", PROVISIONING_IP_POLL_INTERVAL_MS="10",
        PROVISIONING_IP_POLL_ATTEMPTS="5", STATUS_POLL_INTERVAL=None,
    )
    return await make_api()


@pytest.fixture
async def admin(cloud) -> str:
    return await cloud.admin_token()


@pytest.fixture
async def plan(cloud, admin) -> dict:
    return await hetzner_plan(cloud, admin)
