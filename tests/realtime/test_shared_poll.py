"""`SharedPoll`, the layer that makes many dashboards cost one provider call per server and interval
(decabill/realtime/polling.py), at the scale the issue names: 2,000 sockets over 200 servers."""

from __future__ import annotations

import asyncio
import random

import pytest

from decabill.realtime.polling import SharedPoll


class ManualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - not used by SharedPoll
        self.t += max(seconds, 0.0)


async def test_concurrent_asks_share_one_fetch_per_key() -> None:
    poll: SharedPoll[int, str] = SharedPoll(ManualClock())
    gate = asyncio.Event()
    started: list[int] = []

    async def fetch(key: int) -> str:
        started.append(key)
        await gate.wait()
        return f"server-{key}"

    sockets, servers = 2000, 200
    asks = [asyncio.ensure_future(poll.get(n % servers, lambda n=n: fetch(n % servers), 9.0)) for n in range(sockets)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*asks)
    assert results == [f"server-{n % servers}" for n in range(sockets)]
    assert poll.fetches == servers == len(started) and poll.shared == sockets - servers


async def test_two_thousand_sockets_at_random_phases_cost_about_one_call_per_server_and_interval() -> None:
    """Every socket ticks every 10 s at its own phase and accepts a reading up to 9 s old (interval − 1 s):
    a server is read at most once per 9 s, so over 10 intervals 200 servers cost at most
    200 × (10 × 10/9 + 1) calls, where one call per socket and tick would be 20,000."""
    clock = ManualClock()
    poll: SharedPoll[int, int] = SharedPoll(clock)
    rng = random.Random(9)
    sockets, servers, interval, periods = 2000, 200, 10.0, 10
    phases = [(rng.uniform(0, interval), n % servers) for n in range(sockets)]
    ticks = sorted((phase + k * interval, server) for phase, server in phases for k in range(periods))

    async def fetch(server: int) -> int:
        return server

    for at, server in ticks:
        clock.t = at
        assert await poll.get(server, lambda server=server: fetch(server), interval - 1.0) == server
    assert len(ticks) == sockets * periods
    assert servers * periods <= poll.fetches <= servers * (periods * interval / (interval - 1.0) + 1)


async def test_results_are_reused_within_max_age_then_refreshed() -> None:
    clock = ManualClock()
    poll: SharedPoll[str, int] = SharedPoll(clock)
    calls = 0

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await poll.get("a", fetch, 9.0) == 1
    clock.t = 9.0
    assert await poll.get("a", fetch, 9.0) == 1  # exactly max_age old: still good
    assert await poll.get("a", fetch, 5.0) == 2  # a socket with a shorter interval wants a fresher one
    clock.t = 9.5
    assert await poll.get("a", fetch, 9.0) == 2
    assert await poll.get("b", fetch, 9.0) == 3  # another key
    assert poll.fetches == 3


async def test_failures_are_shared_too_and_a_cancelled_waiter_does_not_cancel_the_fetch() -> None:
    clock = ManualClock()
    poll: SharedPoll[str, int] = SharedPoll(clock)
    gate = asyncio.Event()
    calls = 0

    async def failing() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise RuntimeError("provider down")

    first = asyncio.ensure_future(poll.get("a", failing, 9.0))
    second = asyncio.ensure_future(poll.get("a", failing, 9.0))
    await asyncio.sleep(0)
    first.cancel()  # e.g. the socket disconnected
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(RuntimeError, match="provider down"):
        await second
    assert first.cancelled()
    with pytest.raises(RuntimeError):  # reused while fresh: a failing provider is not hammered
        await poll.get("a", failing, 9.0)
    assert calls == 1
    clock.t = 10.0

    async def healthy() -> int:
        return 7

    assert await poll.get("a", healthy, 9.0) == 7


async def test_old_entries_are_swept_and_close_waits_for_fetches_in_flight() -> None:
    clock = ManualClock()
    poll: SharedPoll[int, int] = SharedPoll(clock, retention=120.0)

    async def value(n: int) -> int:
        return n

    for n in range(50):
        await poll.get(n, lambda n=n: value(n), 9.0)
    assert len(poll) == 50
    clock.t = 121.0
    await poll.get(999, lambda: value(999), 9.0)
    assert len(poll) == 1  # the 50 older than `retention` are gone

    finished = []

    async def slow() -> int:
        await asyncio.sleep(0.05)
        finished.append(True)
        return 1

    pending = asyncio.ensure_future(poll.get(1000, slow, 9.0))
    await asyncio.sleep(0)
    await poll.close()
    assert finished == [True] and len(poll) == 0  # the fetch in flight was allowed to finish
    assert await pending == 1

    async def hanging() -> int:
        await asyncio.Event().wait()
        return 0

    stuck = asyncio.ensure_future(poll.get(1001, hanging, 9.0))
    await asyncio.sleep(0)
    await poll.close(timeout=0.05)  # ...within the timeout; then it is cancelled
    with pytest.raises(asyncio.CancelledError):
        await stuck
