"""Sharing server readings between gateway processes through Redis (REDIS_URL set).

Per server and tick one process reads the provider, whatever the number of processes:

1. a reading stored under `<prefix>:dashboard:reading:<tenant>:<item>` taken at or after the asker's
   `oldest` (the gateway's: young enough, not before the tick's grid point less a margin, and after the
   server's last change) is used as it is;
2. otherwise the process that wins the lease `<prefix>:dashboard:lease:<tenant>:<item>` (SET NX PX, held
   while it reads) reads the provider, stores the reading (or the failure's message), releases the lease
   and publishes the key on `<prefix>:dashboard:readings`;
3. the others wait for that publication (at most `wait` seconds: a lease holder that died is not waited
   for again) and read the key.

Times are wall-clock seconds (`time.time()`, or the gateway clock's `wall()`), comparable between processes
of one machine or of machines with synchronised clocks.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

RETENTION_SECONDS = 130  # longer than the longest interval


class SharedReadingFailed(Exception):
    """The lease holder's provider read failed (the message is the domain error's)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClusterReadings:
    def __init__(self, redis: Any, prefix: str, *, wait: float = 5.0, wall: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.prefix = prefix
        self.wait = wait
        self.wall = wall
        self.token = uuid.uuid4().hex
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.provider_reads = 0  # reads this process did for the cluster
        self.reused = 0  # readings taken from another process (or an earlier tick)

    @property
    def channel(self) -> str:
        return f"{self.prefix}:dashboard:readings"

    def _key(self, kind: str, key: str) -> str:
        return f"{self.prefix}:dashboard:{kind}:{key}"

    async def _stored(self, key: str, oldest: float) -> dict[str, Any] | None:
        raw = await self.redis.get(self._key("reading", key))
        if raw is None:
            return None
        reading = json.loads(raw)
        return reading if float(reading.get("at", 0)) >= oldest else None

    @staticmethod
    def _outcome(reading: dict[str, Any]) -> dict[str, Any]:
        if reading.get("ok"):
            return reading["value"]
        raise SharedReadingFailed(str(reading.get("error") or "Failed to get server info"))

    async def get(self, key: str, fetch: Callable[[], Awaitable[dict[str, Any]]], oldest: float) -> dict[str, Any]:
        """The reading of `key` taken at or after `oldest` (wall clock): stored, awaited from the lease holder,
        or read here."""
        stored = await self._stored(key, oldest)
        if stored is not None:
            self.reused += 1
            return self._outcome(stored)
        # The lease covers the read only (released once the reading is stored; it expires by itself when its
        # holder dies): whether a reading is still good is the reading's age, not the lease.
        if await self.redis.set(self._key("lease", key), self.token, nx=True, px=int(self.wait * 1000)):
            # Another process may have stored its reading and released the lease between our look and our lease.
            stored = await self._stored(key, oldest)
            if stored is not None:
                await self.redis.delete(self._key("lease", key))
                self.reused += 1
                return self._outcome(stored)
            return await self._read(key, fetch)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), self.wait)
        except TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(key, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiters.pop(key, None)
        stored = await self._stored(key, oldest)
        if stored is not None:
            self.reused += 1
            return self._outcome(stored)
        return await self._read(key, fetch)  # the lease holder is gone: read it ourselves

    async def _read(self, key: str, fetch: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        started = self.wall()
        self.provider_reads += 1
        try:
            value = await fetch()
            reading: dict[str, Any] = {"at": started, "ok": True, "value": value}
        except Exception as exc:
            reading = {"at": started, "ok": False, "error": getattr(exc, "message", None) or type(exc).__name__}
            await self._store(key, reading)
            raise
        await self._store(key, reading)
        return value

    async def _store(self, key: str, reading: dict[str, Any]) -> None:
        try:
            await self.redis.set(self._key("reading", key), json.dumps(reading), px=RETENTION_SECONDS * 1000)
            await self.redis.delete(self._key("lease", key))
            await self.redis.publish(self.channel, key)
        except Exception as exc:  # the others read the provider themselves after `wait`
            log.warning("dashboard.reading_not_shared", error=str(exc))

    def published(self, key: str) -> None:
        """A reading of `key` arrived (the gateway's listener calls this for every publication)."""
        for future in self._waiters.pop(key, []):
            if not future.done():
                future.set_result(None)
