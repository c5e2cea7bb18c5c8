"""Against a real `decabill serve`: X-Forwarded-For believed only from TRUSTED_PROXIES (uvicorn's proxy
headers), Retry-After on every 429, Stripe webhook timestamps refused outside the tolerance either way."""

from __future__ import annotations

import time

import httpx

from tests.fakes.stripe import make_event, webhook_request
from tests.helpers import assert_error
from tests.security.conftest import api_of

LIMITED = {"RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_AUTH_LIMIT": "3", "RATE_LIMIT_LIMIT": "1000",
           "RATE_LIMIT_TTL": "60"}


async def _login_as_from(api, n: int, forwarded_for: str) -> httpx.Response:
    return await api.post("/auth/login", json={"email": f"nobody{n}@example.com", "password": "wrong-password"},
                          headers={"X-Forwarded-For": forwarded_for})


def _assert_rate_limited(response: httpx.Response) -> None:
    assert_error(response, 429, "Too many requests, please try again later.")
    assert 1 <= int(response.headers["Retry-After"]) <= 60, response.headers


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(serve, database):
    with serve(database, **LIMITED) as served:
        api = api_of(served)
        answers = [await _login_as_from(api, n, f"198.51.100.{n}") for n in range(4)]
        assert [r.status_code for r in answers[:3]] == [401] * 3
        _assert_rate_limited(answers[3])  # a new X-Forwarded-For per attempt bought nothing

    with serve(database, **LIMITED, TRUSTED_PROXIES="127.0.0.1/32, ::1") as served:
        api = api_of(served)
        # Behind a trusted proxy every client has its own budget ...
        assert [(await _login_as_from(api, n, f"198.51.100.{n}")).status_code for n in range(6)] == [401] * 6
        # ... and one client is limited whatever the proxy's own address.
        answers = [await _login_as_from(api, n, "203.0.113.9") for n in range(4)]
        assert [r.status_code for r in answers[:3]] == [401] * 3
        _assert_rate_limited(answers[3])


WEBHOOK_SECRET = "whsec_security_test"


async def _deliver(api, offset_seconds: int) -> httpx.Response:
    event = make_event("customer.created", {"id": "cus_1", "object": "customer"})
    body, headers = webhook_request(event, WEBHOOK_SECRET, int(time.time()) + offset_seconds)
    return await api.post("/webhooks/payments/stripe", content=body, headers=headers)


async def test_webhook_timestamps_outside_the_tolerance_are_refused_in_both_directions(serve, database):
    with serve(database, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET) as served:
        api = api_of(served)
        for offset in (3600, 400, -400, -3600):
            assert_error(await _deliver(api, offset), 400, "Webhook processing failed")
        for offset in (0, 240, -240):
            response = await _deliver(api, offset)
            assert response.status_code == 200, (offset, response.text)

    with serve(database, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_WEBHOOK_TOLERANCE_SECONDS="60") as served:
        api = api_of(served)
        for offset in (120, -120):
            assert_error(await _deliver(api, offset), 400, "Webhook processing failed")
        assert (await _deliver(api, 30)).status_code == 200
