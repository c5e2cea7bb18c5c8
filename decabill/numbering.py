"""Gapless, per-tenant counters for human-readable numbers (`SUB-000042`, later invoice numbers).

`next_number(session, name)` increments the tenant's counter row inside the caller's transaction with
`UPDATE ... RETURNING`: the row stays locked until that transaction ends, so concurrent callers queue
behind it and a rolled-back caller gives its number back. No gaps, no duplicates (D9's rule, reused by
invoicing). A missing counter row is created race-free with `INSERT ... ON CONFLICT DO NOTHING` on the
unique (tenant_id, name) key, then incremented like any other.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Table, update
from sqlalchemy.ext.asyncio import AsyncSession

from decabill.tenancy import current_tenant
from models.jobs import NumberSequence


async def insert_if_missing(session: AsyncSession, table: Table, values: dict[str, Any], keys: list[str]) -> None:
    """`INSERT ... ON CONFLICT (keys) DO NOTHING` on PostgreSQL and SQLite.

    On PostgreSQL a conflicting row that another open transaction has just inserted makes this statement
    wait for that transaction, so afterwards the row is visible (committed) or absent (rolled back)."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    await session.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=keys))


async def next_number(session: AsyncSession, name: str) -> int:
    """The next value (1, 2, 3, ...) of the tenant's counter `name`, allocated in `session`'s transaction."""
    tenant = current_tenant()
    table = NumberSequence.__table__  # type: ignore[attr-defined]
    bump = (
        update(table)
        .where(table.c.tenant_id == tenant, table.c.name == name)
        .values(last_value=table.c.last_value + 1)
        .returning(table.c.last_value)
    )
    value = (await session.execute(bump)).scalar_one_or_none()
    if value is None:
        await insert_if_missing(session, table, {"id": uuid.uuid4(), "tenant_id": tenant, "name": name, "last_value": 0},
                                ["tenant_id", "name"])
        value = (await session.execute(bump)).scalar_one()
    return int(value)


def format_number(prefix: str, value: int, digits: int = 6) -> str:
    return f"{prefix}-{value:0{digits}d}"
