"""On PostgreSQL the admin invoice page's items are JSON the database writes (`decabill.shapes.sql_object` over
`AdminInvoiceView.sql_values`); elsewhere the views are shaped in Python. The two must give the same answer for
every rule and every format: each page below is read both ways on the same rows — invoices in every status the
flags tell apart (draft, issued with and without a balance, partially paid, overdue with a dunning step, paid,
void with and without a number), one without a subscription (`subscriptionId` left out), timestamps with and
without a fraction of a second, balances with four decimals, text that JSON must escape — unfiltered, paged,
searched every way the admin search matches, for one owner, open only, and past the end."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import orjson
import pytest

from decabill import db
from decabill.admin import invoices as admin_invoices
from decabill.invoicing.repository import InvoiceRepository
from decabill.shapes import Json, dump
from decabill.tenancy import bound_tenant
from models.identity import User
from models.invoicing import Invoice, InvoiceStatus
from tests.invoicing.conftest import customer_with_subscription, rows, user_id
from tests.subscriptions.conftest import manual_plan

UTC = dt.timezone.utc


def _invoices(owner: uuid.UUID, subscription: uuid.UUID) -> list[Invoice]:
    start = dt.datetime(2026, 11, 1, 8, 30, tzinfo=UTC)

    def made(n: int, status: str, *, micro: int = 0, **values) -> Invoice:
        values.setdefault("subscription_id", subscription)
        return Invoice(user_id=owner, status=status, created_at=start + dt.timedelta(hours=n, microseconds=micro),
                       **values)

    return [
        made(1, InvoiceStatus.DRAFT, balance_due=Decimal("12.5000")),  # no number, whole second
        made(2, InvoiceStatus.ISSUED, micro=120000, invoice_number="INV-2026-900001", balance_due=Decimal("7.7400"),
             due_date=dt.date(2026, 11, 15), tax_rule="domestic"),
        made(3, InvoiceStatus.ISSUED, micro=1, invoice_number="INV-2026-900002", balance_due=Decimal("0.0000")),
        made(4, InvoiceStatus.PARTIALLY_PAID, micro=999999, invoice_number="INV-2026-900003",
             balance_due=Decimal("1234.5678")),
        made(5, InvoiceStatus.OVERDUE, invoice_number="INV-2026-900004", balance_due=Decimal("99.0000"),
             dunning_level=2, dunning_action="suspend",
             dunning_applied_at=dt.datetime(2026, 11, 20, 6, 0, tzinfo=UTC)),
        made(6, InvoiceStatus.PAID, micro=500, invoice_number="INV-2026-900005", tax_rule="reverse_charge"),
        made(7, InvoiceStatus.VOID, invoice_number="INV-2026-900006", credit_note_number="INV-2026-900006-CN",
             dunning_level=1, dunning_action="remind",
             dunning_applied_at=dt.datetime(2026, 11, 21, 6, 0, 0, 42, tzinfo=UTC)),
        made(8, InvoiceStatus.VOID, credit_note_number="never-shown"),  # void without a number
        made(9, InvoiceStatus.ISSUED, subscription_id=None, invoice_number='INV-2026-9 "q" \\ ü\t€',
             balance_due=Decimal("0.0100")),  # a manual invoice of no subscription
    ]


async def _both_ways(monkeypatch, **query) -> tuple[dict, dict]:
    """The page as answered on PostgreSQL (the database's JSON) and as the Python views shape the same rows."""
    with bound_tenant("default"):
        written = await admin_invoices.list_invoices(None, **query)
        with monkeypatch.context() as patched:
            patched.setattr(InvoiceRepository, "writes_json", property(lambda self: False))
            shaped = await admin_invoices.list_invoices(None, **query)
    assert type(written.items) is Json and isinstance(shaped.items, list)

    def answer(page) -> dict:  # as a client reads it; numbers as exact decimals (7.7400 and 7.74 are one value)
        return json.loads(orjson.dumps(dump(page, "PaginatedAdminInvoicesResponse")), parse_float=Decimal)

    return answer(written), answer(shaped)


async def test_the_page_postgresql_writes_is_the_page_the_views_shape(billing_api, admin, monkeypatch):
    if db.dialect_name() != "postgresql":
        pytest.skip("the database writes the JSON on PostgreSQL only")
    api = billing_api
    plan = await manual_plan(api, admin, basePrice="30.00")
    token, subscription = await customer_with_subscription(api, admin, plan["id"], "o'brien+lists@example.com")
    owner, subscription_id = user_id(token), uuid.UUID(subscription["id"])
    async with db.transaction() as session:
        made = _invoices(owner, subscription_id)
        for invoice in made:
            invoice.tenant_id = "default"
            session.add(invoice)
    (user,) = await rows(User, User.id == owner)

    pages = [
        {"limit": 20, "offset": 0},
        {"limit": 3, "offset": 2},
        {"limit": 20, "offset": 100},  # past the end: no items, the total still counted
        {"limit": 20, "offset": 0, "search": "INV-2026-9000"},  # an invoice-number prefix
        {"limit": 20, "offset": 0, "search": "o'brien"},  # the owner's email
        {"limit": 20, "offset": 0, "search": subscription["number"]},
        {"limit": 20, "offset": 0, "search": str(made[3].id)},  # a whole invoice id
        {"limit": 20, "offset": 0, "search": str(owner)[:8]},  # a fragment of the owner's id
        {"limit": 20, "offset": 0, "search": '"q" \\'},  # text that JSON escapes
        {"limit": 20, "offset": 0, "search": "no such thing"},
        {"limit": 20, "offset": 0, "user_id": owner},
        {"limit": 20, "offset": 0, "user_id": owner, "open_only": True},
    ]
    for query in pages:
        written, shaped = await _both_ways(monkeypatch, **query)
        assert written == shaped, query

    # and the page holds what was made, each flag as its rule says
    written, _ = await _both_ways(monkeypatch, limit=20, offset=0, user_id=owner)
    by_number = {item.get("invoiceNumber"): item for item in written["items"]}
    assert written["total"] == len(made) == len(written["items"])
    assert [item["id"] for item in written["items"]] == [str(invoice.id) for invoice in reversed(made)]
    assert {number for number, item in by_number.items() if item["canPay"]} == {
        "INV-2026-900001", "INV-2026-900003", "INV-2026-900004", 'INV-2026-9 "q" \\ ü\t€'}
    assert by_number[None]["canDownload"] is False and by_number["INV-2026-900001"]["canPreview"] is True
    assert by_number["INV-2026-900006"]["voidDocumentNumber"] == "INV-2026-900006-CN"
    assert by_number["INV-2026-900006"]["canDownloadVoidDocument"] is True
    assert [item["voidDocumentNumber"] for item in written["items"] if item["status"] == "void"] == [
        None, "INV-2026-900006-CN"]
    assert "subscriptionId" not in by_number['INV-2026-9 "q" \\ ü\t€']
    assert by_number["INV-2026-900001"]["createdAt"] == "2026-11-01T10:30:00.120000Z"
    assert written["items"][-1]["createdAt"] == "2026-11-01T09:30:00Z" and written["items"][-1]["dueDate"] is None
    assert by_number["INV-2026-900004"]["dunningAppliedAt"] == "2026-11-20T06:00:00Z"
    assert by_number["INV-2026-900004"]["dunningLevel"] == 2 and by_number["INV-2026-900005"]["dunningLevel"] == 0
    assert by_number["INV-2026-900003"]["balance"] == Decimal("1234.5678")
    assert {item["userEmail"] for item in written["items"]} == {user.email}
