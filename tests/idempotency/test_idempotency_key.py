"""`Idempotency-Key` on writes (issue #23): one key, one effect; a stored response for repeats; 422 for a
different request; 409 while the first runs; keys scoped per caller; both backends."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from decabill import db
from tests.catalog.conftest import create_plan
from tests.helpers import assert_error
from tests.subscriptions.conftest import hetzner_plan, manual_plan, order


async def test_a_retried_order_with_one_key_orders_once(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await cloud.post("/subscriptions", token=customer, headers=key, json={"planId": plan["id"]})
    assert first.status_code == 201, first.text
    again = await cloud.post("/subscriptions", token=customer, headers=key, json={"planId": plan["id"]})
    assert again.status_code == 201
    assert again.json() == first.json()
    assert len(fake_cloud.hetzner.servers) == 1
    listed = (await cloud.get("/subscriptions", token=customer)).json()
    assert [s["id"] for s in listed] == [first.json()["id"]]

    # Without a key, or with another key, the same body orders again.
    await order(cloud, customer, plan["id"])
    other = await cloud.post("/subscriptions", token=customer, headers={"Idempotency-Key": "other"},
                             json={"planId": plan["id"]})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert len(fake_cloud.hetzner.servers) == 3


async def test_the_same_key_with_another_body_is_422(cloud, admin, customer):
    plan = await manual_plan(cloud, admin)
    other_plan = await create_plan(cloud, admin, plan["serviceTypeId"], name="Support days", basePrice="40.00")
    key = {"Idempotency-Key": "order-1"}
    assert (await cloud.post("/subscriptions", token=customer, headers=key, json={"planId": plan["id"]})).status_code == 201
    reused = await cloud.post("/subscriptions", token=customer, headers=key, json={"planId": other_plan["id"]})
    assert_error(reused, 422, "This Idempotency-Key was already used with a different request")
    # Another operation with the same key is a different request too.
    listed = (await cloud.get("/subscriptions", token=customer)).json()
    cancel = await cloud.post(f"/subscriptions/{listed[0]['id']}/cancel", token=customer, headers=key)
    assert cancel.status_code == 422
    assert len((await cloud.get("/subscriptions", token=customer)).json()) == 1


async def test_keys_belong_to_their_caller_and_tenant(cloud, admin, customer):
    from tests.subscriptions.conftest import complete_profile

    plan = await manual_plan(cloud, admin)
    second = await cloud.user_token(admin, "second@example.com")
    await complete_profile(cloud, second)
    key = {"Idempotency-Key": "shared-key"}
    mine = await cloud.post("/subscriptions", token=customer, headers=key, json={"planId": plan["id"]})
    theirs = await cloud.post("/subscriptions", token=second, headers=key, json={"planId": plan["id"]})
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


async def test_a_failed_request_keeps_nothing_and_may_be_retried(cloud, admin, customer):
    key = {"Idempotency-Key": "retry-after-error"}
    missing = str(uuid.uuid4())
    failed = await cloud.post("/subscriptions", token=customer, headers=key, json={"planId": missing})
    assert failed.status_code == 404
    plan = await manual_plan(cloud, admin)
    retried = await cloud.post("/subscriptions", token=customer, headers=key, json={"planId": plan["id"]})
    assert retried.status_code == 201, retried.text


async def test_a_repeat_while_the_first_runs_is_409(cloud, admin, customer, fake_cloud, monkeypatch):
    from decabill.subscriptions import service as subscriptions

    plan = await manual_plan(cloud, admin)
    started, release = asyncio.Event(), asyncio.Event()
    original = subscriptions.create_subscription

    async def slow_create(*args, **kwargs):
        started.set()
        await release.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(subscriptions, "create_subscription", slow_create)
    key = {"Idempotency-Key": "slow"}
    first = asyncio.create_task(cloud.post("/subscriptions", token=customer, headers=key, json={"planId": plan["id"]}))
    await started.wait()
    running = await cloud.post("/subscriptions", token=customer, headers=key, json={"planId": plan["id"]})
    assert_error(running, 409, "A request with this Idempotency-Key is still being processed; retry later")
    release.set()
    assert (await first).status_code == 201
    done = await cloud.post("/subscriptions", token=customer, headers=key, json={"planId": plan["id"]})
    assert done.status_code == 201 and done.json() == (await first).json()


async def test_a_key_expires_after_its_time(cloud, admin, customer, monkeypatch):
    plan = await manual_plan(cloud, admin)
    key = {"Idempotency-Key": "day-old"}
    first = await cloud.post("/subscriptions", token=customer, headers=key, json={"planId": plan["id"]})
    later = db.utcnow() + dt.timedelta(hours=24, minutes=1)
    monkeypatch.setattr(db, "utcnow", lambda: later)
    again = await cloud.post("/subscriptions", token=customer, headers=key, json={"planId": plan["id"]})
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]


async def test_an_invalid_key_is_400(cloud, admin, customer):
    plan = await manual_plan(cloud, admin)
    response = await cloud.post("/subscriptions", token=customer, headers={"Idempotency-Key": "x" * 256},
                                json={"planId": plan["id"]})
    assert response.status_code == 400


async def test_fifty_concurrent_retries_provision_one_server(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin)
    key = {"Idempotency-Key": str(uuid.uuid4())}

    async def attempt():
        while True:  # a client that retries while the first attempt is still running
            response = await cloud.post("/subscriptions", token=customer, headers=key, json={"planId": plan["id"]})
            if response.status_code != 409:
                return response
            await asyncio.sleep(0.05)

    responses = await asyncio.gather(*(attempt() for _ in range(50)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(fake_cloud.hetzner.servers) == 1
    assert len((await cloud.get("/subscriptions", token=customer)).json()) == 1


async def test_expired_keys_are_forgotten_by_the_cleanup_job(cloud, admin, customer, monkeypatch):
    from sqlalchemy import func, select

    from decabill.idempotency import tasks
    from models.idempotency import IdempotencyKey

    async def stored() -> int:
        async with db.transaction() as session:
            return (await session.execute(select(func.count()).select_from(IdempotencyKey))).scalar_one()

    plan = await manual_plan(cloud, admin)
    for key in ("a", "b"):
        await cloud.post("/subscriptions", token=customer, headers={"Idempotency-Key": key}, json={"planId": plan["id"]})
    assert await tasks.delete_expired() == 0 and await stored() == 2
    later = db.utcnow() + dt.timedelta(hours=25)
    monkeypatch.setattr(db, "utcnow", lambda: later)
    assert await tasks.delete_expired() == 2 and await stored() == 0


@pytest.fixture
async def redis_fast_path(env):
    """REDIS_URL set for the app under a key prefix of this test's own; yields (real Redis client, prefix)."""
    import redis.asyncio as redis

    prefix = f"test-idem-{uuid.uuid4().hex[:8]}"
    env.update(REDIS_URL="redis://127.0.0.1:6379/0", REDIS_KEY_PREFIX=prefix)
    client = redis.from_url("redis://127.0.0.1:6379/0")
    yield client, prefix
    async for leftover in client.scan_iter(f"{prefix}:*"):
        await client.delete(leftover)
    await client.aclose()


async def _first_order_kept_in_redis(redis_fast_path, make_api, admin, customer, key: str):
    """The app with Redis; one order under the Idempotency-Key `key`. Returns the client, the order's body and
    headers, its 201 response and the key of its entry in Redis."""
    client, prefix = redis_fast_path
    api = await make_api()
    plan = await manual_plan(api, admin)
    body, headers = {"planId": plan["id"]}, {"Idempotency-Key": key}
    first = await api.post("/subscriptions", token=customer, headers=headers, json=body)
    assert first.status_code == 201, first.text
    [stored] = [k async for k in client.scan_iter(f"{prefix}:idempotency:*")]
    return api, body, headers, first, stored


async def test_with_redis_repeats_are_answered_from_redis_and_the_database_stays_the_truth(
        redis_fast_path, env, make_api, admin, customer):
    """REDIS_URL set: a completed write's response is kept in the real Redis; a repeat is answered from it
    even when the database row is gone (shown by deleting it), another body is still 422; Redis unreachable
    → the database path answers."""
    from decabill.idempotency import fast_path
    from decabill.tenancy import bound_tenant
    from models.idempotency import IdempotencyKey

    client, _ = redis_fast_path
    api, body, key, first, stored = await _first_order_kept_in_redis(redis_fast_path, make_api, admin, customer, "fast-1")
    assert 0 < await client.pttl(stored) <= 24 * 3600 * 1000
    assert b"fast-1" not in stored  # hashed: no client key or user id in clear

    async with db.transaction() as session:  # the database forgets it: Redis still answers
        await session.execute(IdempotencyKey.__table__.delete())
    again = await api.post("/subscriptions", token=customer, headers=key, json=body)
    assert again.status_code == 201 and again.json() == first.json()
    assert [s["id"] for s in (await api.get("/subscriptions", token=customer)).json()] == [first.json()["id"]]
    other = await api.post("/subscriptions", token=customer, headers=key, json={"planId": str(uuid.uuid4())})
    assert_error(other, 422)

    # Redis unreachable: no answer from it (logged), the database decides.
    env.update(REDIS_URL="redis://127.0.0.1:1/0")
    with bound_tenant("default"):
        assert await fast_path.recall("someone", "fast-1") is None


async def test_an_unreadable_redis_entry_is_a_miss_and_the_database_answers(
        redis_fast_path, make_api, admin, customer):
    client, _ = redis_fast_path
    api, body, key, first, stored = await _first_order_kept_in_redis(redis_fast_path, make_api, admin, customer,
                                                                     "garbled-1")
    await client.set(stored, b"not json {")
    again = await api.post("/subscriptions", token=customer, headers=key, json=body)
    assert again.status_code == 201 and again.json() == first.json()
    assert [s["id"] for s in (await api.get("/subscriptions", token=customer)).json()] == [first.json()["id"]]
