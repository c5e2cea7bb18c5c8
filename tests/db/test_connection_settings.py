"""What every PostgreSQL connection of the service's pool runs with."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from decabill import db


async def test_postgresql_connections_compile_no_statement_just_in_time(database):
    """PostgreSQL JIT-compiles, at every run, a statement whose estimated cost passes jit_above_cost; the admin
    search's plain-term statement is estimated that costly, and compiling took 50-150 ms of its ~0.3 ms read."""
    if not database.startswith("postgresql"):
        pytest.skip("a PostgreSQL setting")
    async with db.transaction() as session:
        assert (await session.execute(text("SHOW jit"))).scalar_one() == "off"
