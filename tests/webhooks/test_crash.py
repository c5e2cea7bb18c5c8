"""kill -9 between a change and its delivery loses nothing (issue #23): the event is committed with the
change (the outbox), and the coordinator `webhooks.deliver_due` sends what a dead process left behind."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

from decabill import db
from decabill.tenancy import bound_tenant
from decabill.webhooks import delivery
from models.webhooks import WebhookDelivery
from tests.payments.conftest import rows
from tests.webhooks.conftest import register, verified_events
from tests.webhooks.test_endpoints import delivery_round

CHILD = Path(__file__).with_name("crash_child.py")


def run_until_killed(database_url: str, mode: str, target: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(Path(__file__).parents[2])}
    finished = subprocess.run([sys.executable, str(CHILD), mode, target], env=env, capture_output=True, timeout=120)
    assert finished.returncode == -9, finished.stderr.decode()[-2000:]


def user_id_of(token: str) -> str:
    import jwt

    return jwt.decode(token, options={"verify_signature": False})["sub"]


async def test_a_process_killed_after_the_commit_loses_no_event(cloud, admin, fake_cloud, database):
    endpoint = await register(cloud, admin, f"{fake_cloud.receiver_url}/erp", ["customer.created"])
    customer = await cloud.user_token(admin, "late@example.com")
    run_until_killed(database, "after-commit", user_id_of(customer))

    profile = (await cloud.get("/customer-profile", token=customer)).json()
    assert profile["firstName"] == "Ada"  # the change is there ...
    [pending] = await rows(WebhookDelivery)  # ... and so is its event, waiting
    assert (pending.status, pending.attempts) == ("pending", 0)
    assert fake_cloud.receiver.requests == []

    await delivery_round()
    [event] = verified_events(fake_cloud.receiver, endpoint["secret"])
    assert event["type"] == "customer.created" and event["data"]["id"] == profile["id"]


async def test_a_process_killed_mid_delivery_leaves_it_to_be_sent_again(cloud, admin, fake_cloud, database,
                                                                       monkeypatch):
    endpoint = await register(cloud, admin, f"{fake_cloud.receiver_url}/erp", ["customer.created"])
    customer = await cloud.user_token(admin, "late@example.com")
    run_until_killed(database, "after-commit", user_id_of(customer))
    [pending] = await rows(WebhookDelivery)
    run_until_killed(database, "mid-delivery", str(pending.id))

    [claimed] = await rows(WebhookDelivery)
    assert (claimed.status, claimed.attempts) == ("pending", 1)
    await delivery_round()  # the claim still runs: nobody sends it twice at once
    assert fake_cloud.receiver.requests == []

    later = db.utcnow() + delivery._claim_time() + dt.timedelta(seconds=1)
    monkeypatch.setattr(db, "utcnow", lambda: later)
    await delivery_round()
    [event] = verified_events(fake_cloud.receiver, endpoint["secret"])
    assert event["type"] == "customer.created"
    [done] = await rows(WebhookDelivery)
    assert (done.status, done.attempts) == ("succeeded", 2)


async def test_no_event_without_its_change(cloud, admin, customer, fake_cloud):
    """An order whose transaction rolls back (unknown plan) records nothing."""
    await register(cloud, admin, f"{fake_cloud.receiver_url}/erp", ["subscription.created"])
    response = await cloud.post("/subscriptions", token=customer, json={"planId": str(uuid.uuid4())})
    assert response.status_code == 404
    with bound_tenant("default"):
        assert await rows(WebhookDelivery) == []
