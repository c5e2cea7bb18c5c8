"""The dunning customers list (`GET /admin/billing/dunning/customers`) over several customers: its order, its pages
and their total, the level filter, each entry's suspension and pause, and what it costs: the same statements for a
page of one customer as for a page of many, and on PostgreSQL a plan that reads the past-due invoices by their
index and each listed customer's e-mail by primary key, for the page's rows alone."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from decabill import db
from models.dunning import DunningPause
from models.identity import User
from models.invoicing import Invoice, InvoiceStatus
from models.subscriptions import CustomerSuspension

TODAY = dt.datetime.now(dt.timezone.utc).date()

#: (e-mail, [(dunning level, balance due, days past due), ...]); an invoice not yet due or paid is never listed
CUSTOMERS = {
    "level2-older@example.com": [(2, "50.00", 30), (1, "10.00", 5)],
    "level2-newer@example.com": [(2, "70.00", 20)],
    "level1@example.com": [(1, "25.50", 40)],
    "level0@example.com": [(None, "12.00", 2)],
    "level3@example.com": [(3, "99.99", 60), (None, "1.01", 1)],
}
ORDER = ["level3@example.com", "level2-older@example.com", "level2-newer@example.com", "level1@example.com",
         "level0@example.com"]  # highest level first, then the oldest due date


async def _seed() -> dict[str, uuid.UUID]:
    users: dict[str, uuid.UUID] = {}
    async with db.transaction() as session:
        for email, invoices in CUSTOMERS.items():
            user = User(tenant_id="default", email=email, id=uuid.uuid4())
            users[email] = user.id
            session.add(user)
            await session.flush()
            for level, balance, days in invoices:
                session.add(Invoice(tenant_id="default", user_id=user.id, status=InvoiceStatus.OVERDUE,
                                    balance_due=Decimal(balance), dunning_level=level,
                                    due_date=TODAY - dt.timedelta(days=days)))
            # neither listed nor counted: paid, and not due yet
            session.add(Invoice(tenant_id="default", user_id=user.id, status=InvoiceStatus.PAID,
                                due_date=TODAY - dt.timedelta(days=90), dunning_level=4))
            session.add(Invoice(tenant_id="default", user_id=user.id, status=InvoiceStatus.ISSUED,
                                balance_due=Decimal("5.00"), due_date=TODAY + dt.timedelta(days=3), dunning_level=4))
        bystander = User(tenant_id="default", email="paid-up@example.com", id=uuid.uuid4())
        session.add(bystander)
        await session.flush()
        session.add(Invoice(tenant_id="default", user_id=bystander.id, status=InvoiceStatus.PAID,
                            due_date=TODAY - dt.timedelta(days=10)))
        now = dt.datetime.now(dt.timezone.utc)
        session.add(CustomerSuspension(tenant_id="default", user_id=users["level3@example.com"],
                                       invoice_number="INV-2026-000777", suspended_at=now - dt.timedelta(days=2)))
        session.add(DunningPause(tenant_id="default", user_id=users["level1@example.com"],
                                 paused_until=now + dt.timedelta(days=9), reason="payment plan"))
        session.add(DunningPause(tenant_id="default", user_id=users["level0@example.com"],
                                 paused_until=now - dt.timedelta(days=1)))  # over: not shown
    return users


class _Statements:
    """The statements the app runs while it is entered (the engine's cursor executions)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.seen.append((statement, parameters))

    def __enter__(self) -> _Statements:
        sa.event.listen(db.get_engine().sync_engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: Any) -> None:
        sa.event.remove(db.get_engine().sync_engine, "before_cursor_execute", self._record)

    def reading(self) -> list[str]:
        """The reads of the listing (not the token's account check, which runs at most once a second)."""
        return [sql for sql, _ in self.seen
                if sql.lstrip().upper().startswith(("SELECT", "WITH")) and not sql.startswith("SELECT users.")]


async def _listed(api, admin: str, query: str = "") -> dict:
    response = await api.get(f"/admin/billing/dunning/customers{query}", token=admin)
    assert response.status_code == 200, response.text
    return response.json()


async def test_customers_are_listed_by_level_then_oldest_due_date_in_pages_with_their_total(api, admin):
    users = await _seed()
    whole = await _listed(api, admin, "?limit=100")
    assert [entry["email"] for entry in whole["items"]] == ORDER and whole["total"] == 5
    by_email = {entry["email"]: entry for entry in whole["items"]}
    assert [(by_email[email]["dunningLevel"], by_email[email]["overdueInvoices"], by_email[email]["balanceDue"])
            for email in ORDER] == [(3, 2, 101.0), (2, 2, 60.0), (2, 1, 70.0), (1, 1, 25.5), (0, 1, 12.0)]
    assert by_email["level3@example.com"]["userId"] == str(users["level3@example.com"])
    assert by_email["level3@example.com"]["suspendedForInvoiceNumber"] == "INV-2026-000777"
    assert by_email["level3@example.com"]["suspendedAt"]
    assert by_email["level1@example.com"]["dunningPausedUntil"]
    assert [email for email in ORDER if by_email[email]["suspendedAt"]] == ["level3@example.com"]
    assert [email for email in ORDER if by_email[email]["dunningPausedUntil"]] == ["level1@example.com"]

    pages = [await _listed(api, admin, f"?limit=2&offset={offset}") for offset in (0, 2, 4)]
    assert [[entry["email"] for entry in page["items"]] for page in pages] == [ORDER[:2], ORDER[2:4], ORDER[4:]]
    assert [page["total"] for page in pages] == [5, 5, 5]
    past_the_end = await _listed(api, admin, "?limit=2&offset=7")
    assert (past_the_end["items"], past_the_end["total"]) == ([], 5)

    at_two = await _listed(api, admin, "?minLevel=2&limit=1&offset=1")
    assert ([entry["email"] for entry in at_two["items"]], at_two["total"]) == ([ORDER[1]], 3)
    assert (await _listed(api, admin, "?minLevel=4"))["total"] == 0


async def test_a_page_costs_the_same_statements_for_one_customer_as_for_many(api, admin):
    await _seed()
    counts = []
    for limit in (1, 5):
        with _Statements() as statements:
            assert len((await _listed(api, admin, f"?limit={limit}"))["items"]) == limit
        counts.append(len(statements.reading()))
    assert counts[0] == counts[1], counts
    with _Statements() as statements:
        await _listed(api, admin, "?limit=5")
    listing = [sql for sql in statements.reading() if "past_due_customers" in sql]
    assert len(listing) == 1, listing  # the page and its total in one statement


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


async def test_the_plan_reads_past_due_invoices_by_index_and_only_the_page_s_e_mails(api, admin):
    if db.dialect_name() != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    users = await _seed()
    async with db.transaction() as session:  # most invoices are paid: the past-due ones are few among them
        await session.execute(sa.insert(Invoice), [
            {"id": uuid.uuid4(), "tenant_id": "default", "user_id": user, "status": InvoiceStatus.PAID,
             "due_date": TODAY - dt.timedelta(days=day % 300)} for user in users.values() for day in range(600)])
    with _Statements() as statements:
        assert len((await _listed(api, admin, "?limit=2"))["items"]) == 2
    [(sql, parameters)] = [(sql, p) for sql, p in statements.seen if "past_due_customers" in sql]
    async with db.get_engine().connect() as conn:
        await conn.execute(sa.text("ANALYZE invoices"))
        # the tables are tiny: keep the planner off whole-table reads so that it chooses as on a large database
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin"):
            await conn.execute(sa.text(f"SET {setting} = off"))
        [[plan]] = (await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", parameters)).all()
        await conn.rollback()
    root = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    invoices = [node for node in _nodes(root) if node.get("Relation Name") == "invoices"]
    assert [node.get("Index Name") for node in invoices] == ["ix_invoices_tenant_status_due"], root
    users = [node for node in _nodes(root) if node.get("Relation Name") == "users"]
    assert [(node["Index Name"], node["Actual Loops"]) for node in users] == [("users_pkey", 2)], root
