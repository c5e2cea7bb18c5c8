"""PostgreSQL helpers the benchmarks share."""

from __future__ import annotations

import asyncpg


async def recreate_database(admin_dsn: str, name: str, *, template: str | None = None) -> None:
    """Drop the database `name` (ending its connections) and create it again: empty, or a copy of `template`."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    finally:
        await conn.close()
