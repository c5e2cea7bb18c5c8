"""Fixtures of the webhook tests: the ordering app (cloud fakes) allowed to call the fake receiver on
127.0.0.1, an admin, a customer, and helpers to register an endpoint and run the queue."""

from __future__ import annotations

import json

import pytest

from decabill.jobs import queue
from decabill.webhooks import signing
from tests.helpers import drain  # noqa: F401 - the tests of this area import it from here
from tests.subscriptions.conftest import admin, customer  # noqa: F401 - fixtures


@pytest.fixture
async def cloud(env, make_api, fake_cloud):
    fake_cloud.reset()
    env.update(
        HETZNER_API_TOKEN=fake_cloud.hetzner_token, HETZNER_API_URL=fake_cloud.hetzner_url,
        CLOUDFLARE_API_TOKEN=fake_cloud.cf_token, CLOUDFLARE_ZONE_ID=fake_cloud.cf_zone_id,
        CLOUDFLARE_API_URL=fake_cloud.cf_url, DNS_BASE_DOMAIN="decabill.test",
        PROVIDER_MAX_RETRIES="0", PROVISIONING_IP_POLL_INTERVAL_MS="10", PROVISIONING_IP_POLL_ATTEMPTS="5",
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true", WEBHOOK_RETRY_SCHEDULE="0,0,0,0",
    )
    return await make_api()


@pytest.fixture(autouse=True)
def fresh_broker():
    queue.reset_broker()
    yield
    queue.reset_broker()


async def register(api, admin_token: str, url: str, event_types: list[str], **fields) -> dict:
    response = await api.post("/admin/webhook-endpoints", token=admin_token,
                              json={"url": url, "eventTypes": event_types, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def verified_events(receiver, secret: str) -> list[dict]:
    """The events the receiver got, each checked as a receiver checks it: signature over the raw body."""
    events = []
    for delivery in receiver.deliveries():
        header = delivery["headers"].get("decabill-signature")
        assert signing.verify(delivery["body"], header, secret), header
        event = json.loads(delivery["body"])
        assert delivery["headers"]["decabill-event-id"] == event["id"]
        assert delivery["headers"]["decabill-event-type"] == event["type"]
        events.append(event)
    return events
