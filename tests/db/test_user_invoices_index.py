"""The invoices of a user are read by ix_invoices_tenant_user_created (tenant_id, user_id, created_at, id; migration
0028, in place of ix_invoices_tenant_user without `id`): the admin search's e-mail branch, when it gathers a few
matches, takes the matched users' invoice ids (and created_at) from the index alone, an Index Only Scan without heap
fetches once the table is vacuumed; a term matching most invoices walks the newest instead and reads none of them
this way. Real PostgreSQL for the plan; the index itself on both backends."""

from __future__ import annotations

import datetime as dt
import uuid
import warnings
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import text

from decabill import db
from decabill.invoicing.repository import InvoiceRepository
from decabill.repository import TENANT_PARAM, paging
from models.identity import User
from models.invoicing import Invoice

INDEX = "ix_invoices_tenant_user_created"


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


async def _seed(users: int, invoices_each: int) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    async with db.transaction() as session:
        for number in range(users):
            user = User(tenant_id="default", email=f"customer{number:03d}@example.com", id=uuid.uuid4())
            session.add(user)
            await session.flush()
            session.add_all(Invoice(tenant_id="default", user_id=user.id, created_at=start + dt.timedelta(days=day))
                            for day in range(invoices_each))


async def test_the_migrated_schema_has_the_index_of_the_model(database):
    def reflected(sync: sa.Connection) -> dict[str, list[str]]:
        with warnings.catch_warnings():  # SQLite: "Skipped unsupported reflection of expression-based index"
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            return {ix["name"]: ix["column_names"] for ix in sa.inspect(sync).get_indexes("invoices")}

    async with db.get_engine().connect() as conn:
        indexes = await conn.run_sync(reflected)
    assert indexes[INDEX] == ["tenant_id", "user_id", "created_at", "id"]
    assert "ix_invoices_tenant_user" not in indexes  # replaced: the new one serves each of its reads
    [model] = [ix for ix in Invoice.__table__.indexes if ix.name == INDEX]
    assert [column.name for column in model.columns] == indexes[INDEX]


async def _search_plan(pattern: str) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the e-mail search statement as search_page builds it (a pattern, no id branch, the whole
    list), its values written into it, on vacuumed tables."""
    async with db.get_engine().connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE invoices"))  # the visibility map: no heap fetch for the index's rows
        await conn.execute(text("ANALYZE users"))
    statement = InvoiceRepository._search_statement("postgresql", False, False, None, True).params(
        **{TENANT_PARAM: "default", InvoiceRepository.SEARCH_PATTERN: pattern, **paging(20, 0)})
    sql = statement.compile(db.get_engine().sync_engine, compile_kwargs={"literal_binds": True})
    async with db.get_engine().connect() as conn:
        # the tables are tiny: keep the planner off whole-table reads so that it chooses as at 100,000 invoices
        await conn.execute(text("SET enable_seqscan = off"))
        await conn.execute(text("SET enable_bitmapscan = off"))
        await conn.execute(text("SET enable_hashjoin = off"))
        await conn.execute(text("SET enable_mergejoin = off"))
        [[plan]] = (await conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"))).all()
        await conn.rollback()
    return plan[0]["Plan"]


def _invoices_by_user(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [node for node in _nodes(plan)
            if node.get("Relation Name") == "invoices" and "user_id" in node.get("Index Cond", "")]


async def test_the_search_by_email_reads_the_invoice_ids_of_the_matched_users_from_the_index_alone(database):
    if db.dialect_name() != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    # 10 of 60 customers match, 100 of 600 invoices: few enough (100² < 20 × 600) to be gathered, not walked
    await _seed(users=60, invoices_each=10)
    by_user = _invoices_by_user(await _search_plan("%customer04%"))
    assert by_user
    for node in by_user:
        assert (node["Node Type"], node["Index Name"]) == ("Index Only Scan", INDEX), node
        assert node["Heap Fetches"] == 0, node
    assert sum(node["Actual Rows"] * node["Actual Loops"] for node in by_user) == 10 * 10  # customer040..049
    assert _counter_reads(await _search_plan("%customer04%")) == 0  # counted from what it gathered


def _counter_reads(plan: dict[str, Any]) -> int:
    return sum(node["Actual Rows"] * node["Actual Loops"] for node in _nodes(plan)
               if node.get("Relation Name") == "invoice_user_counts")


@pytest.mark.parametrize("counters_above", [10, 1000])
async def test_a_search_matching_most_invoices_walks_the_newest(database, monkeypatch, counters_above):
    """Every customer matches (600 invoices): the page is the first 20 of the tenant's invoices newest first whose
    owner matched, read from ix_invoices_tenant_created. More matched customers than `COUNTERS_ABOVE_CUSTOMERS`
    are counted from their counters, reading no invoice of theirs; fewer, from their invoices' index entries."""
    if db.dialect_name() != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    monkeypatch.setattr(InvoiceRepository, "COUNTERS_ABOVE_CUSTOMERS", counters_above)
    monkeypatch.setattr(InvoiceRepository, "_searches", {})  # statements are built once per process
    await _seed(users=60, invoices_each=10)
    plan = await _search_plan("%customer0%")
    walked = [node for node in _nodes(plan) if node.get("Index Name") == "ix_invoices_tenant_created"]
    assert [(node["Node Type"], node["Scan Direction"], node["Actual Rows"]) for node in walked] == \
        [("Index Scan", "Backward", 20)], plan
    by_user = sum(node["Actual Rows"] * node["Actual Loops"] for node in _invoices_by_user(plan))
    if counters_above < 60:
        assert (_counter_reads(plan), by_user) == (60, 0), plan
    else:
        assert (_counter_reads(plan), by_user) == (0, 600), plan
