"""Time and shared polling for the dashboard gateway.

`SharedPoll` is what keeps many dashboards from multiplying provider API calls: every socket that
needs the status of one server in a tick asks the same entry, and only the first ask in a while
reaches the provider.

* While a fetch is in flight, every further ask for the key joins it (one `asyncio.Task`, awaited
  through `asyncio.shield`, so a socket that goes away cancels only its own wait).
* A finished fetch is reused by an ask whose `max_age` (and `since`) it satisfies. The gateway asks with
  `max_age = interval - 1 s` of the asking socket, and a grid tick also with `since = its due time - 1 s`:
  each snapshot a socket receives was fetched after its previous tick, a reading taken late in one tick
  is not reused for the next, and the sockets of a server tick together (a server is watched by its
  user's sockets, on the user's grid). So 2,000 sockets over 200 servers cost 200 provider calls per
  interval.
* Failures are shared and reused the same way (a failing provider is not hammered by every socket).
* Entries are forgotten `retention` seconds (the longest interval) after their fetch started.

Ages are measured from the start of the fetch (the reading is at least that fresh). The cache lives
in one process; with several gateway processes behind Redis the fetch itself goes through
`decabill.realtime.cluster.ClusterReadings` (one provider read per server and tick for all of them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Clock(Protocol):
    """Monotonic seconds and sleeping; tests substitute a faster clock."""

    def now(self) -> float: ...

    def wall(self) -> float:
        """Seconds since the epoch on the same scale as `now()` (readings shared between processes carry it)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


@dataclass
class _Entry(Generic[V]):
    started: float
    task: asyncio.Task[V]


def _consume_outcome(task: asyncio.Task) -> None:
    """Mark the outcome as retrieved: nobody may be left waiting for a shared fetch."""
    if not task.cancelled():
        task.exception()


class SharedPoll(Generic[K, V]):
    """Coalesce concurrent fetches of a key and reuse recent results (see the module docstring)."""

    def __init__(self, clock: Clock | None = None, *, retention: float = 120.0) -> None:
        self.clock = clock or MonotonicClock()
        self.retention = retention
        self._entries: dict[K, _Entry[V]] = {}
        self._last_sweep = self.clock.now()
        self.fetches = 0  # fetches started (for the gateway: provider calls)
        self.shared = 0  # asks answered by a fetch another ask started (in flight or recent)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: K, fetch: Callable[[], Awaitable[V]], max_age: float, *,
                  since: float | None = None) -> V:
        """The key's value from a fetch at most `max_age` old and started at or after `since` (the clock's
        time; a grid tick passes its due time less a margin, so that a reading taken late in one tick is
        not reused for the next), a fetch in flight, or a new fetch."""
        now = self.clock.now()
        self._sweep(now)
        oldest = now - max_age if since is None else max(now - max_age, since)
        entry = self._entries.get(key)
        if entry is None or entry.task.cancelled() or (entry.task.done() and entry.started < oldest):
            entry = _Entry(now, asyncio.ensure_future(fetch()))
            entry.task.add_done_callback(_consume_outcome)
            self._entries[key] = entry
            self.fetches += 1
        else:
            self.shared += 1
        return await asyncio.shield(entry.task)

    def peek(self, key: K) -> V | None:
        """The key's last successful reading, if any (without asking)."""
        entry = self._entries.get(key)
        if entry is None or not entry.task.done() or entry.task.cancelled() or entry.task.exception() is not None:
            return None
        return entry.task.result()

    def forget(self, key: K) -> None:
        """Drop the key's reading (a change made it stale): the next ask fetches anew."""
        self._entries.pop(key, None)

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < self.retention / 4:
            return
        self._last_sweep = now
        stale = [k for k, e in self._entries.items() if e.task.done() and now - e.started > self.retention]
        for key in stale:
            del self._entries[key]

    async def close(self, timeout: float = 10.0) -> None:
        """Forget everything; fetches in flight may finish within `timeout` (a cancelled database statement
        can leave SQLite's write lock held), the rest are cancelled."""
        tasks = [e.task for e in self._entries.values() if not e.task.done()]
        self._entries.clear()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class Batcher(Generic[K, V]):
    """Collect the keys asked for within `window` seconds and load them with one call of `load(keys)` (at
    most `max_batch` keys per call): many dashboards whose ticks fall due together cost one query."""

    def __init__(self, load: Callable[[list[K]], Awaitable[dict[K, V]]], *, window: float = 0.01,
                 max_batch: int = 1000) -> None:
        self.load = load
        self.window = window
        self.max_batch = max_batch
        self._waiting: dict[K, list[asyncio.Future[V]]] = {}
        self._flush: asyncio.Task | None = None
        self.loads = 0  # calls of `load`

    async def get(self, key: K) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._flush is None:
            self._flush = asyncio.ensure_future(self._run())
        return await future

    async def _run(self) -> None:
        await asyncio.sleep(self.window)
        waiting, self._waiting, self._flush = self._waiting, {}, None
        keys = list(waiting)
        for start in range(0, len(keys), self.max_batch):
            chunk = keys[start:start + self.max_batch]
            self.loads += 1
            try:
                values = await self.load(chunk)
            except Exception as exc:  # every asker of the chunk sees the failure
                for key in chunk:
                    for future in waiting[key]:
                        if not future.done():
                            future.set_exception(exc)
                continue
            for key in chunk:
                for future in waiting[key]:
                    if not future.done():
                        future.set_result(values[key])

    async def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            await asyncio.gather(self._flush, return_exceptions=True)
