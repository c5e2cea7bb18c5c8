"""CPU of shaping list responses (`decabill.shapes.dump_list`), in-process, without a database: µs per page for the
list shapes of the hot reads, from the same inputs the app shapes — the read-only rows `_DriverStatement` makes
for the list statements (named tuples of the statements' own columns, with asyncpg's value types: its UUID type,
UTC-aware datetimes, Decimal, date), wrapped in the app's views where the service wraps them.

    flock -x /work/wt/cpu.lock .venv/bin/python -m bench.shapes [--pages 20000] [--repeat 5]

Each shape is shaped `--pages` times in a row (after a warm-up), `--repeat` times; printed is the best of the runs
as µs per page, and a digest of the page's JSON bytes (orjson, as `OrjsonJsonifier` writes it) — the same digest
before and after a change to the shaper means the same bytes out for these pages."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import time
import uuid
from decimal import Decimal
from typing import Any

import orjson
from asyncpg.pgproto import pgproto
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

import models  # noqa: F401
from decabill.admin.views import AdminInvoiceView
from decabill.invoicing.repository import InvoiceRepository
from decabill.invoicing.views import InvoiceView
from decabill.repository import _DriverStatement
from decabill.shapes import dump_list
from decabill.subscriptions.repository import SubscriptionRepository

UTC = dt.timezone.utc
START = dt.datetime(2026, 11, 3, 8, 15, 2, 417305, tzinfo=UTC)


def _row_type(statement: Any) -> Any:
    """The named tuple of the rows `_DriverStatement` makes for the statement on asyncpg."""
    return _DriverStatement(statement, PGDialect_asyncpg()).row


def _uuid(rng: random.Random) -> pgproto.UUID:  # what asyncpg returns for a uuid column
    return pgproto.UUID(str(uuid.UUID(int=rng.getrandbits(128), version=4)))


def _invoice_values(rng: random.Random, index: int) -> dict[str, Any]:
    """The listed columns of one invoice: drafts, issued, paid, overdue with dunning, a void one with its credit
    note, manual ones without a subscription."""
    status = ["issued", "paid", "paid", "draft", "overdue", "partially_paid", "void", "issued"][index % 8]
    created = START - dt.timedelta(days=index, seconds=rng.randrange(86400), microseconds=rng.randrange(1000000))
    number = None if status == "draft" else f"INV-2026-{1000 - index:05d}"
    dunned = status == "overdue"
    return {
        "id": _uuid(rng), "subscription_id": None if index % 5 == 4 else _uuid(rng), "user_id": _uuid(rng),
        "invoice_number": number, "status": status,
        "balance_due": Decimal("0.00") if status in ("paid", "void") else Decimal(f"{rng.randrange(100, 99999)}.{index:02d}"),
        "created_at": created, "due_date": None if status == "draft" else (created + dt.timedelta(days=14)).date(),
        "credit_note_number": f"{number}-CN" if status == "void" else None,
        "tax_rule": None if status == "draft" else ["domestic", "reverse_charge", "oss"][index % 3],
        "dunning_level": 2 if dunned else (None if index % 2 else 0), "dunning_action": "remind" if dunned else None,
        "dunning_applied_at": created + dt.timedelta(days=20) if dunned else None,
    }


def admin_invoices(count: int = 20) -> list[AdminInvoiceView]:
    """`list_invoices` of decabill/admin/invoices.py over `InvoiceRepository._latest_page` rows."""
    rng, row = random.Random(1), _row_type(InvoiceRepository._latest_page)
    items = []
    for index in range(count):
        values = _invoice_values(rng, index)
        number = None if values["subscription_id"] is None else f"SUB-{index:06d}"
        email = None if index == 7 else f"customer{index}@example.com"
        record = row(**values, subscription_number=number, user_email=email, tenant_total=1234, list_version=7)
        items.append(AdminInvoiceView(record, subscription_number=number, user_email=email))
    return items


def customer_invoices(count: int = 12) -> list[InvoiceView]:
    """`list_invoices` of decabill/invoicing/service.py (the invoices of a subscription)."""
    rng, row = random.Random(2), _row_type(InvoiceRepository._of_own_subscription)
    return [InvoiceView(row(owned=_uuid(rng), **_invoice_values(rng, index))) for index in range(count)]


def open_invoices(count: int = 5) -> list[InvoiceView]:
    """`list_open_overdue` of decabill/invoicing/service.py (with the subscription's number)."""
    rng, row = random.Random(3), _row_type(InvoiceRepository._open_of_user)
    items = []
    for index in range(count):
        record = row(**_invoice_values(rng, index), subscription_number=f"SUB-{index:06d}")
        items.append(InvoiceView(record, subscription_number=record.subscription_number))
    return items


def subscriptions(count: int = 10) -> list[Any]:
    """`list_subscriptions` of decabill/subscriptions/service.py: the rows themselves."""
    rng, row = random.Random(4), _row_type(SubscriptionRepository._of_user)
    items = []
    for index in range(count):
        start = START - dt.timedelta(days=30 * index, microseconds=rng.randrange(1000000))
        cancelled = index % 4 == 3
        items.append(row(
            id=_uuid(rng), number=f"SUB-{index:06d}", plan_id=_uuid(rng), user_id=_uuid(rng),
            status="pending_cancel" if cancelled else "active", current_period_start=start,
            current_period_end=start + dt.timedelta(days=30), next_billing_at=start + dt.timedelta(days=30),
            cancel_requested_at=start + dt.timedelta(days=3) if cancelled else None,
            cancel_effective_at=start + dt.timedelta(days=30) if cancelled else None, resumed_at=None,
            created_at=start - dt.timedelta(days=1), updated_at=start + dt.timedelta(seconds=5),
            suspended_at=start + dt.timedelta(days=2) if index == 5 else None))
    return items


CASES = {
    "admin invoices (20, AdminInvoiceListItem)": (admin_invoices, "AdminInvoiceListItem"),
    "invoices of a subscription (12, InvoiceResponse)": (customer_invoices, "InvoiceResponse"),
    "open and overdue invoices (5, InvoiceResponse)": (open_invoices, "InvoiceResponse"),
    "subscriptions (10, SubscriptionResponse)": (subscriptions, "SubscriptionResponse"),
}


def main(pages: int, repeat: int) -> None:
    print(f"µs per page (best of {repeat} × {pages} pages); digest of the page's JSON")
    for name, (make, schema) in CASES.items():
        items = make()
        body = orjson.dumps(dump_list(items, schema))
        for _ in range(min(pages, 2000)):  # warm-up
            dump_list(items, schema)
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            for _ in range(pages):
                dump_list(items, schema)
            best = min(best, time.perf_counter() - started)
        print(f"  {name:<50} {best / pages * 1e6:8.2f} µs   {hashlib.sha256(body).hexdigest()[:16]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    main(arguments.pages, arguments.repeat)
