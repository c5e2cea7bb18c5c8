"""The invoice state machine: which event is allowed from which status, and what each transition does to the
balance (the payments and admin billing areas use the same events)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from decabill.invoicing import states
from models.invoicing import Invoice, InvoiceStatus as S

NOW = dt.datetime(2026, 3, 10, 12, tzinfo=dt.timezone.utc)
ALLOWED = {
    "issue": {S.DRAFT},
    "overdue": {S.ISSUED, S.PARTIALLY_PAID},
    "payment": {S.ISSUED, S.PARTIALLY_PAID, S.OVERDUE},
    "mark_paid": {S.ISSUED, S.PARTIALLY_PAID, S.OVERDUE},
    "mark_unpaid": {S.PAID},
    "void": {S.ISSUED, S.PARTIALLY_PAID, S.OVERDUE},
}


def invoice(status: str, **fields) -> Invoice:
    values = {"status": status, "invoice_number": None if status == S.DRAFT else "INV-2026-00001",
              "total_gross": Decimal("119.00"), "balance_due": Decimal("119.00"), "amount_paid": Decimal(0)}
    return Invoice(tenant_id="default", **{**values, **fields})


@pytest.mark.parametrize("event", sorted(ALLOWED))
@pytest.mark.parametrize("status", S.ALL)
def test_transition_table(event, status):
    assert states.allowed(invoice(status), event) == (status in ALLOWED[event])


def test_refusal_messages_are_the_references():
    assert states.EVENTS["void"].refusal(invoice(S.PAID)) == "Cannot void a paid invoice"
    assert states.EVENTS["void"].refusal(invoice(S.DRAFT)) == "Only issued invoices with an invoice number can be voided"
    assert states.EVENTS["mark_paid"].refusal(invoice(S.VOID)) == "Cannot mark invoice as paid from status void"
    assert states.EVENTS["mark_unpaid"].refusal(invoice(S.ISSUED)) == "Can only mark unpaid from paid status"


def test_payments_partial_then_full():
    target = invoice(S.ISSUED)
    assert states.EVENTS["payment"].effect(target, NOW, Decimal("19.00")) == S.PARTIALLY_PAID
    assert (target.balance_due, target.amount_paid) == (Decimal("100.00"), Decimal("19.00"))
    assert states.EVENTS["payment"].effect(target, NOW, Decimal("150.00")) == S.PAID
    assert target.balance_due == 0 and target.paid_at == NOW


def test_mark_unpaid_returns_to_issued_or_overdue_by_due_date():
    late = invoice(S.PAID, balance_due=Decimal(0), due_date=NOW.date() - dt.timedelta(days=1))
    assert states.EVENTS["mark_unpaid"].effect(late, NOW, None) == S.OVERDUE and late.balance_due == Decimal("119.00")
    due_today = invoice(S.PAID, balance_due=Decimal(0), due_date=NOW.date())
    assert states.EVENTS["mark_unpaid"].effect(due_today, NOW, None) == S.ISSUED


def test_void_zeroes_the_balance_and_names_the_credit_note():
    target = invoice(S.OVERDUE)
    assert states.EVENTS["void"].effect(target, NOW, None) == S.VOID
    assert (target.balance_due, target.voided_at, target.credit_note_number) == (0, NOW, "INV-2026-00001-CN")
