"""The Redis job stream survives a killed worker (issue #15): two real `decabill worker` processes on the machine's
Redis (a key prefix of their own), the first killed with SIGKILL while it holds unacknowledged billing units; the
second takes them over once they are idle QUEUE_CLAIM_IDLE_MS, every customer is billed exactly once, and the
stream is trimmed down to what is not done — with unacknowledged entries never trimmed away."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import pytest
import redis

from decabill.jobs import queue
from decabill.jobs.stream import trim_threshold
from models.invoicing import Invoice
from tests.admin.conftest import add_position
from tests.invoicing.conftest import admin, billing_api, plan  # noqa: F401 - fixtures
from tests.invoicing.conftest import customer_with_subscription, rows, user_id
from tests.log_lines import logged
from tests.processes import decabill_process

REDIS = "redis://127.0.0.1:6379/0"
CUSTOMERS = 40  # enough that the first worker cannot finish them all between two polls
READY = "jobs.started"


@pytest.fixture
def key_prefix():
    prefix = f"decabill-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


async def invoices_per_user(owners: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    found = [invoice.user_id for invoice in await rows(Invoice, Invoice.user_id.in_(owners))]
    return {owner: found.count(owner) for owner in owners}


async def until(condition, what: str, timeout: float, process, log_path, every: float = 0.2) -> None:
    """Poll the async `condition()` on this loop (the test's database engine lives here)."""
    for _ in range(int(timeout / every)):
        assert process.poll() is None, f"the worker exited before {what}: {log_path.read_text()[-3000:]}"
        if await condition():
            return
        await asyncio.sleep(every)
    raise AssertionError(f"not {what} within {timeout} s: {log_path.read_text()[-3000:]}")


def test_the_trim_threshold_never_passes_pending_or_undelivered_entries():
    assert trim_threshold(b"1700-5", b"1600-2") == "1600-2"  # the oldest pending entry stays
    assert trim_threshold(b"1700-5", None) == "1700-5"  # everything delivered before it was acknowledged
    assert trim_threshold(b"0-0", None) is None  # nothing delivered yet: nothing may go


async def test_a_killed_workers_units_are_taken_over_and_the_stream_is_trimmed(
        billing_api, admin, plan, env, database, key_prefix, tmp_path):
    if not database.startswith("postgresql"):
        pytest.skip("several worker processes share the PostgreSQL database")
    api = billing_api
    owners = []
    for number in range(CUSTOMERS):
        token, subscription = await customer_with_subscription(api, admin, plan["id"], f"c{number}@example.com")
        owners.append(user_id(token))
        await add_position(subscription, owners[-1], "10.00")
    env.update(REDIS_URL=REDIS, REDIS_KEY_PREFIX=key_prefix)
    worker_env = {**os.environ, "DATABASE_URL": database, "QUEUE_CLAIM_IDLE_MS": "3000", "LOG_LEVEL": "info",
                  "QUEUE_WORKER_CONCURRENCY": "1"}
    stream, group = f"{key_prefix}:jobs", f"{key_prefix}:workers"
    client = redis.Redis.from_url(REDIS)

    def pending() -> int:
        return client.xpending(stream, group)["pending"]

    with decabill_process(["worker"], worker_env, tmp_path, tmp_path / "first.log", ready=READY) as first:
        queue.reset_broker()
        broker = queue.get_broker()
        await broker.startup()
        for owner in owners:
            await queue.enqueue("invoicing.bill_user", "default", str(owner))
        await broker.shutdown()
        queue.reset_broker()
        async def one_billed_and_one_held() -> bool:
            # Kill while a unit is read but not acknowledged: issuing is fast, so look often.
            return sum((await invoices_per_user(owners)).values()) >= 1 and pending() > 0

        await until(one_billed_and_one_held, "one billed", 60, first, tmp_path / "first.log", every=0.02)
        first.send_signal(signal.SIGKILL)
        first.wait()
    left = await invoices_per_user(owners)
    assert sum(left.values()) < CUSTOMERS and pending() > 0  # the kill left units read but not done

    with decabill_process(["worker"], worker_env, tmp_path, tmp_path / "second.log", ready=READY) as second:
        async def all_billed() -> bool:
            counts = (await invoices_per_user(owners)).values()
            assert max(counts) <= 1, counts  # nobody twice
            return min(counts) == 1

        async def trimmed() -> bool:
            return pending() == 0 and client.xlen(stream) <= 1

        await until(all_billed, "every customer billed", 120, second, tmp_path / "second.log")
        await until(trimmed, "acknowledged and trimmed", 60, second, tmp_path / "second.log")
    assert set((await invoices_per_user(owners)).values()) == {1}
    assert logged((tmp_path / "second.log").read_text(), "jobs.messages_taken_over")
    client.close()
