"""The public catalogue's answers, kept encoded per process: the storefront's busiest request costs neither a
query nor a serialisation while the catalogue is unchanged.

* Every catalogue write bumps the tenant's `catalog_version` counter in its own transaction (`bump_version`).
  The process that wrote drops its answers after the commit; the other processes notice the new version within
  `VERSION_CHECK_SECONDS` and one read (one primary-key read per tenant per interval, not per request, run in the
  background: requests are answered from the version known meanwhile).
* An answer also expires after the provider cache's lifetime (`PROVIDER_CACHE_SECONDS`): prices read from a
  provider age like the provider cache itself. `PROVIDER_CACHE_SECONDS=0` turns this cache off too.
* Bounded: at most `MAX_ENTRIES` answers (least recently used dropped first), keyed by tenant and query.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.config import get_settings
from decabill.numbering import current_number, next_number
from decabill.tenancy import current_tenant

VERSION_COUNTER = "catalog_version"
VERSION_CHECK_SECONDS = 1.0
MAX_ENTRIES = 512

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class EncodedAnswer:
    body: bytes
    etag: str  # a strong validator of `body`


@dataclass
class _Entry:
    answer: EncodedAnswer
    version: int
    expires: float


class PublicCatalogCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        # (engine generation, tenant) -> (version, when read)
        self._versions: dict[tuple[int, str], tuple[int, float]] = {}
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}
        self._refreshing: dict[tuple[int, str], asyncio.Task] = {}  # background version checks running

    async def answer(self, query: Hashable, build: Callable[[], Awaitable[bytes]]) -> EncodedAnswer:
        """The encoded answer to `query` in the request's tenant, built by `build` when none is current."""
        ttl = get_settings().provider_cache_seconds
        tenant = (db.generation(), current_tenant())
        if ttl <= 0:
            return encode(await build())
        version = await self._version(tenant)
        key = (tenant, query)
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry.version == version and entry.expires > now:
            self._entries.move_to_end(key)
            return entry.answer
        answer = encode(await build())
        self._entries[key] = _Entry(answer, version, now + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return answer

    def forget(self, tenant: tuple[int, str]) -> None:
        """Drop the tenant's answers and its known version (this process just changed its catalogue)."""
        self._versions.pop(tenant, None)
        for key in [key for key in self._entries if key[0] == tenant]:
            del self._entries[key]

    async def _version(self, tenant: tuple[int, str]) -> int:
        known = self._versions.get(tenant)
        if known is None:
            return await self._read_version(tenant)
        if time.monotonic() - known[1] >= VERSION_CHECK_SECONDS and tenant not in self._refreshing:
            # Checked in the background: a request never waits for the check. Awaited here, every request that
            # arrived during the read queued behind it — at 2,000 req/s a stall of up to a second, once a second.
            refresh = db.background_task(self._refresh(tenant))  # with the request's tenant
            self._refreshing[tenant] = refresh
            refresh.add_done_callback(lambda _: self._refreshing.pop(tenant, None))
        return known[0]

    async def _read_version(self, tenant: tuple[int, str]) -> int:
        lock = self._locks.setdefault(tenant, asyncio.Lock())
        async with lock:  # the first request of a tenant: one read, however many requests wait for it
            known = self._versions.get(tenant)
            if known is not None and time.monotonic() - known[1] < VERSION_CHECK_SECONDS:
                return known[0]
            async with db.read() as session:
                version = await current_number(session, VERSION_COUNTER)
            self._versions[tenant] = (version, time.monotonic())
            return version

    async def _refresh(self, tenant: tuple[int, str]) -> None:
        try:
            await self._read_version(tenant)
        except Exception as exc:  # the known version keeps serving; the next request after the interval retries
            log.warning("catalog.version_check_failed", error=f"{type(exc).__name__}: {exc}")


def encode(body: bytes) -> EncodedAnswer:
    return EncodedAnswer(body, '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"')


public_cache = PublicCatalogCache()


async def bump_version(session: AsyncSession) -> None:
    """Record a catalogue change in the caller's transaction; this process forgets its answers after the commit."""
    await next_number(session, VERSION_COUNTER)
    tenant = (db.generation(), current_tenant())

    async def forget() -> None:
        public_cache.forget(tenant)

    db.after_commit(forget)
