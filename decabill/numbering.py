"""Gapless, per-tenant counters for human-readable numbers (`SUB-000042`, later invoice numbers).

`next_number(session, name)` increments the tenant's counter row inside the caller's transaction with
`UPDATE ... RETURNING`: the row stays locked until that transaction ends, so concurrent callers queue
behind it and a rolled-back caller gives its number back. No gaps, no duplicates (D9's rule, reused by
invoicing). A missing counter row is created race-free with `INSERT ... ON CONFLICT DO NOTHING` on the
unique (tenant_id, name) key, then incremented like any other.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from decabill.jobs.repository import NumberSequenceRepository


async def next_number(session: AsyncSession, name: str) -> int:
    """The next value (1, 2, 3, ...) of the tenant's counter `name`, allocated in `session`'s transaction."""
    counters = NumberSequenceRepository(session)
    value = await counters.bump(name)
    if value is None:
        await counters.create_if_missing(name)
        value = await counters.bump(name)
        assert value is not None
    return int(value)


async def next_numbers(session: AsyncSession, name: str, count: int) -> int:
    """Allocate `count` consecutive values of the tenant's counter `name` at once (one `UPDATE ... RETURNING`,
    the billing day's batch); returns the first. Same lock and rollback rules as `next_number`."""
    counters = NumberSequenceRepository(session)
    last = await counters.bump(name, count)
    if last is None:
        await counters.create_if_missing(name)
        last = await counters.bump(name, count)
        assert last is not None
    return int(last) - count + 1


async def current_number(session: AsyncSession, name: str) -> int:
    """The tenant's counter `name` as last allocated (0 when never used); takes no lock."""
    return await NumberSequenceRepository(session).current(name)


def format_number(prefix: str, value: int, digits: int = 6) -> str:
    return f"{prefix}-{value:0{digits}d}"

