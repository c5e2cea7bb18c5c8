"""Leases: a named, expiring claim on a piece of work that talks to the outside world.

Work that only touches the database claims its rows and finishes in one transaction (row lock,
`FOR UPDATE SKIP LOCKED` on PostgreSQL). Work that calls a cloud API (provisioning a backorder,
deprovisioning at expiry, SSH updates) must not hold a transaction — or SQLite's write lock — for the
seconds that takes, so it first takes a lease in a short transaction, does the slow part, and writes
its result while still holding it:

    async with leases.hold(f"backorder:{backorder_id}") as held:
        if not held:
            return            # someone else is on it: a second delivery of the same job is a no-op

A lease row is keyed (tenant, name) with a unique constraint; whoever inserts it (or finds it expired)
holds it until `release` or `expires_at`. A crashed worker therefore blocks the name for at most `ttl`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from decabill import db
from decabill.jobs.repository import JobLeaseRepository

DEFAULT_TTL = dt.timedelta(minutes=10)
POLL_SECONDS = 0.1


def _outside_transaction() -> None:
    if db.in_transaction():
        raise RuntimeError("a lease must be taken outside a transaction (it has to be visible to others at once)")


async def try_acquire(name: str, ttl: dt.timedelta = DEFAULT_TTL) -> str | None:
    """Take the lease `name` for the current tenant; the holder token, or None when someone holds it."""
    _outside_transaction()
    token = uuid.uuid4().hex
    async with db.transaction() as session:
        now = db.utcnow()
        lease = await JobLeaseRepository(session).claim(name, token, now + ttl, now)
        if lease is None:
            return None
        if lease.holder != token:
            if lease.expires_at > now:
                return None
            lease.holder, lease.expires_at = token, now + ttl  # the previous holder's time is up
    return token


async def release(name: str, token: str) -> None:
    async with db.transaction() as session:
        await JobLeaseRepository(session).release(name, token)


async def acquire(name: str, ttl: dt.timedelta = DEFAULT_TTL, *, wait: float = 0.0) -> str | None:
    """`try_acquire`, retried for up to `wait` seconds while another holder finishes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        token = await try_acquire(name, ttl)
        if token is not None or loop.time() >= deadline:
            return token
        await asyncio.sleep(POLL_SECONDS)


@asynccontextmanager
async def hold(name: str, ttl: dt.timedelta = DEFAULT_TTL, *, wait: float = 0.0) -> AsyncIterator[bool]:
    """Hold the lease for the block; yields False (and holds nothing) when it could not be taken."""
    token = await acquire(name, ttl, wait=wait)
    try:
        yield token is not None
    finally:
        if token is not None:
            await release(name, token)
