"""On PostgreSQL the hot lists' items are JSON the database writes (`decabill.shapes.sql_object` over
`AdminInvoiceView.sql_values` / `InvoiceView.sql_values`, and a subscription's row); elsewhere the views are shaped
in Python. The two must give the same answer for every rule and every format: each list below is read both ways on
the same rows — invoices in every status the flags tell apart (draft, issued with and without a balance, partially
paid, overdue with a dunning step, paid, void with and without a number), one without a subscription
(`subscriptionId` left out), timestamps with and without a fraction of a second, balances with four decimals, text
that JSON must escape. The admin page unfiltered, paged, searched every way the admin search matches, for one owner,
open only, and past the end; the customer's invoices of a subscription, open and overdue invoices, subscriptions."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import orjson
import pytest

from decabill import db
from decabill.admin import invoices as admin_invoices
from decabill.identity.principal import Principal
from decabill.invoicing import service as invoicing
from decabill.repository import Repository
from decabill.subscriptions import service as subscriptions
from decabill.invoicing.repository import InvoiceRepository
from decabill.shapes import Json, dump, dump_list, json_fields
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


def _answer(data) -> object:
    """As a client reads an answer; numbers as exact decimals (7.7400 and 7.74 are one value)."""
    return json.loads(orjson.dumps(data), parse_float=Decimal)


async def _both_ways(monkeypatch, read):
    """What `read()` gives on PostgreSQL (the database's JSON) and as the Python views shape the same rows."""
    with bound_tenant("default"):
        written = await read()
        with monkeypatch.context() as patched:
            patched.setattr(Repository, "writes_json", property(lambda self: False))
            shaped = await read()
    return written, shaped


async def _admin_page(monkeypatch, **query) -> tuple[dict, dict]:
    written, shaped = await _both_ways(monkeypatch, lambda: admin_invoices.list_invoices(None, **query))
    assert type(written.items) is Json and isinstance(shaped.items, list)
    return tuple(_answer(dump(page, "PaginatedAdminInvoicesResponse")) for page in (written, shaped))


async def _customer_list(monkeypatch, read, schema: str) -> tuple[list, list]:
    written, shaped = await _both_ways(monkeypatch, read)
    assert type(written) is Json and isinstance(shaped, list)
    return _answer(written), _answer(dump_list(shaped, schema))


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
        written, shaped = await _admin_page(monkeypatch, **query)
        assert written == shaped, query

    # run as Core (inside a transaction, as with tracing on) rather than on the driver's connection: the same text
    with bound_tenant("default"):
        unfiltered = {"limit": 20, "offset": 0, "search": None, "user_id": None, "open_only": False,
                      "shape": json_fields("AdminInvoiceListItem")}
        async with db.read() as session:
            on_driver = await InvoiceRepository(session).search_page_json(**unfiltered)
        async with db.transaction() as session:
            assert await InvoiceRepository(session).search_page_json(**unfiltered) == on_driver

    customer = Principal(tenant="default", role="user", method="users", user_id=owner)
    of_subscription, shaped = await _customer_list(
        monkeypatch, lambda: invoicing.list_invoices(customer, subscription_id), "InvoiceResponse")
    assert of_subscription == shaped and len(of_subscription) == len(made) - 1  # the manual invoice is of none
    assert {item["subscriptionNumber"] for item in of_subscription} == {None}
    open_overdue, shaped = await _customer_list(
        monkeypatch, lambda: invoicing.list_open_overdue(customer), "InvoiceResponse")
    assert open_overdue == shaped and len(open_overdue) == 5
    assert {item["subscriptionNumber"] for item in open_overdue} == {subscription["number"], None}
    listed, shaped = await _customer_list(
        monkeypatch, lambda: subscriptions.list_subscriptions(customer), "SubscriptionResponse")
    assert listed == shaped and [item["id"] for item in listed] == [subscription["id"]]
    assert "suspendedAt" in listed[0] and listed[0]["suspendedAt"] is None  # nullable: written as null

    # and the page holds what was made, each flag as its rule says
    written, _ = await _admin_page(monkeypatch, limit=20, offset=0, user_id=owner)
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
