"""The admin list's first page runs with its limit written into the SQL (`decabill.repository.planned_first_page`),
so that PostgreSQL keeps one plan for it per connection instead of planning every request. Real PostgreSQL: the
plan counts are the server's own (`pg_prepared_statements`, per connection)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from decabill import db
from decabill.invoicing.repository import InvoiceRepository
from decabill.shapes import json_fields
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


@pytest.mark.parametrize("as_json", [False, True], ids=["rows", "json"])
async def test_the_first_page_is_planned_once_later_pages_keep_their_parameters(pg, as_json):
    engine = db.init_engine(pg, pool_size=1, max_overflow=0, pool_timeout=10)  # every read on one connection
    with bound_tenant("default"):
        for offset in (0, 0, 0, 0, 0, 0, 0, 40, 40):
            async with db.read() as session:
                repository, unfiltered = InvoiceRepository(session), dict(search=None, user_id=None, open_only=False)
                if as_json:  # the page written as JSON by PostgreSQL: the same statement inside its aggregate
                    items, total, _ = await repository.search_page_json(limit=20, offset=offset, **unfiltered,
                                                                     shape=json_fields("AdminInvoiceListItem"))
                    assert (items, total) == ("[]", 0)
                else:
                    rows, total = await repository.search_page(limit=20, offset=offset, **unfiltered)
                    assert rows == [] and total == 0
    plans = await _plans(engine)
    end = "LIMIT 20) AS listed" if as_json else "LIMIT 20"
    [first] = [plan for statement, plan in plans.items() if "invoices" in statement and statement.endswith(end)]
    assert first[0] >= 1, plans  # after five custom plans PostgreSQL settled on one for every run
    [later] = [plan for statement, plan in plans.items() if "invoices" in statement and "OFFSET $" in statement]
    assert sum(later) == 2, plans  # the later pages: one statement, its limit and offset as parameters


@pytest.mark.parametrize("as_json", [False, True], ids=["rows", "json"])
async def test_the_open_invoices_of_a_customer_are_planned_once(pg, as_json):
    """The customer's open and overdue invoices (`_open_of_user`, marked `generic_plan`): PostgreSQL planned that
    statement anew at every run before (its status list made the plan for unknown values look costlier)."""
    import uuid

    engine = db.init_engine(pg, pool_size=1, max_overflow=0, pool_timeout=10)
    with bound_tenant("default"):
        for _ in range(8):
            async with db.read() as session:
                repository, someone = InvoiceRepository(session), uuid.uuid4()
                if as_json:
                    assert await repository.open_of_user_json(someone, json_fields("InvoiceResponse")) == "[]"
                else:
                    assert await repository.open_of_user_with_number(someone) == []
    plans = await _plans(engine)
    [(generic, custom)] = [plan for statement, plan in plans.items() if "invoices.status IN" in statement]
    assert custom == 0 and generic >= 8, plans
