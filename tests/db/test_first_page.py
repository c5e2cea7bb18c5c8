"""The admin list's first page runs with its limit written into the SQL (`decabill.repository.planned_first_page`),
so that PostgreSQL keeps one plan for it per connection instead of planning every request. Real PostgreSQL: the
plan counts are the server's own (`pg_prepared_statements`, per connection)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from decabill import db
from decabill.invoicing.repository import InvoiceRepository
from decabill.tenancy import bound_tenant


@pytest.fixture
async def pg(database):
    if db.dialect_name() != "postgresql":
        pytest.skip("plan caching is PostgreSQL's")
    return database


async def _plans(engine) -> dict[str, tuple[int, int]]:
    """(generic, custom) plans so far of each statement text prepared on the pool's one connection (the driver
    prepares a statement once more to learn its column types: counted together)."""
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT statement, sum(generic_plans), sum(custom_plans) "
                                       "FROM pg_prepared_statements GROUP BY statement"))
        return {statement: (int(generic), int(custom)) for statement, generic, custom in rows}


async def test_the_first_page_is_planned_once_later_pages_keep_their_parameters(pg):
    engine = db.init_engine(pg, pool_size=1, max_overflow=0, pool_timeout=10)  # every read on one connection
    with bound_tenant("default"):
        for offset in (0, 0, 0, 0, 0, 0, 0, 40, 40):
            async with db.read() as session:
                rows, total = await InvoiceRepository(session).latest_page(limit=20, offset=offset)
                assert rows == [] and total == 0
    plans = await _plans(engine)
    [first] = [plan for statement, plan in plans.items() if "invoices" in statement and statement.endswith("LIMIT 20")]
    assert first[0] >= 1, plans  # after five custom plans PostgreSQL settled on one for every run
    [later] = [plan for statement, plan in plans.items() if "invoices" in statement and "OFFSET $" in statement]
    assert sum(later) == 2, plans  # the later pages: one statement, its limit and offset as parameters
