"""The building blocks of exactly-once work: gapless counters and leases, under real concurrency on both
backends."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from decabill import db
from decabill.jobs import leases
from decabill.numbering import format_number, next_number
from decabill.tenancy import bound_tenant


async def _allocate(name: str, *, fail: bool = False) -> int:
    async with db.transaction() as session:
        value = await next_number(session, name)
        await asyncio.sleep(0.01)  # hold the row a little, so the others queue behind it
        if fail:
            raise RuntimeError("rolled back")
    return value


async def test_numbers_are_gapless_and_unique_under_concurrency(database):
    with bound_tenant("default"):
        results = await asyncio.gather(*(_allocate("invoice-2026", fail=i % 5 == 0) for i in range(20)),
                                       return_exceptions=True)
        committed = sorted(r for r in results if isinstance(r, int))
        assert committed == list(range(1, len(committed) + 1))  # rolled-back numbers were given back
        assert await _allocate("invoice-2026") == len(committed) + 1
    with bound_tenant("acme"):  # counters are per tenant and per name
        assert await _allocate("invoice-2026") == 1
        assert await _allocate("subscription") == 1
    assert format_number("SUB", 42) == "SUB-000042"


async def test_a_lease_has_one_holder_until_released_or_expired(database):
    with bound_tenant("default"):
        first = await leases.try_acquire("backorder:1")
        assert first is not None
        assert await leases.try_acquire("backorder:1") is None
        assert await leases.try_acquire("backorder:2") is not None  # other names are independent
        await leases.release("backorder:1", "not-the-holder")  # only the holder releases
        assert await leases.try_acquire("backorder:1") is None
        await leases.release("backorder:1", first)
        assert await leases.try_acquire("backorder:1", ttl=dt.timedelta(milliseconds=1)) is not None
        await asyncio.sleep(0.01)
        assert await leases.try_acquire("backorder:1") is not None  # the expired holder lost it
    with bound_tenant("acme"):
        assert await leases.try_acquire("backorder:1") is not None  # per tenant


async def test_concurrent_acquirers_get_one_lease(database):
    with bound_tenant("default"):
        tokens = await asyncio.gather(*(leases.try_acquire("expire:7") for _ in range(10)))
    assert sum(token is not None for token in tokens) == 1


async def test_hold_waits_for_the_holder(database):
    order: list[str] = []

    async def worker(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        async with leases.hold("item-update:9", wait=5) as held:
            assert held
            order.append(f"{name} in")
            await asyncio.sleep(0.05)
            order.append(f"{name} out")

    with bound_tenant("default"):
        await asyncio.gather(worker("a", 0), worker("b", 0.01))
        async with leases.hold("item-update:9") as held:
            assert held
            async with leases.hold("item-update:9") as again:
                assert not again
    # Mutual exclusion, whoever wins the start: the second holder only enters after the first left.
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


async def test_a_lease_is_never_taken_inside_a_transaction(database):
    with bound_tenant("default"), pytest.raises(RuntimeError, match="outside a transaction"):
        async with db.transaction():
            await leases.try_acquire("x")
