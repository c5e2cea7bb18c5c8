"""Applying payments to invoices — the one place where an invoice's payment status changes, used by the
payment webhook and by admin billing's mark-paid / mark-unpaid (behavior.md part B §6.3, §7.4; D14).

Every function works in the caller's transaction on an invoice row the caller has locked
(`decabill.invoicing.invoicing.locked`), and goes through the invoice state machine
(`decabill.invoicing.invoicing.apply`), which sets status and balance and appends the audit entry in that
same transaction.

* `record_payment` — money received from a processor. Open invoice (issued, partially paid, overdue): an
  amount below the open balance → `partially_paid` with the balance reduced, otherwise `paid` with balance 0
  (an excess is noted in the audit context as `overpaid`). Any other status — void (D14), already paid,
  draft — is never changed: the money is recorded in an audit entry `payment_received_on_<status>` (level
  warn) for a manual refund. A payment in another currency than the invoice's is not applied either
  (`payment_currency_mismatch`).
* Paying an invoice in full or marking it paid settles it for dunning (`dunning.invoice_settled`, same
  transaction): a customer suspended for non-payment is reactivated when nothing else is past due.
* `mark_paid` / `mark_unpaid` — the admin's manual corrections (audit `invoice.mark_paid_manual` /
  `invoice.mark_unpaid_manual` with the reference's context).

A payment, a partial payment or mark paid changes the open balance; the invoice's checkouts still open for the
old balance are then superseded and expired at the processor after the commit (checkouts.py, which watches the
balance, so invoicing's void is covered too).
"""

from __future__ import annotations

import enum
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from decabill.dunning import service as dunning
from decabill.invoicing import service as invoicing
from decabill.invoicing.service import Actor
from models.invoicing import Invoice, InvoiceStatus


class PaymentOutcome(str, enum.Enum):
    PAID = "paid"
    PARTIALLY_PAID = "partially_paid"
    NOT_APPLIED = "not_applied"  # recorded in the audit log only


async def record_payment(session: AsyncSession, invoice: Invoice, *, amount: Decimal, currency: str,
                         processor: str, external_id: str | None, actor: Actor = invoicing.SYSTEM,
                         context: dict[str, Any] | None = None) -> PaymentOutcome:
    """Apply `amount` (major units, > 0) received through `processor` to the locked `invoice`."""
    if amount <= 0:
        raise ValueError("a payment needs a positive amount")
    details = {"processor": processor, "externalId": external_id, "amount": amount, "currency": currency.upper(),
               **(context or {})}
    if currency.upper() != (invoice.currency or "").upper():
        await invoicing.audit(session, invoice, "payment_currency_mismatch",
                           f"Payment of {amount} {currency.upper()} received for an invoice in {invoice.currency}; "
                           "not applied, refund or book it manually",
                           actor=actor, level="warn", before=invoice.status, after=invoice.status, context=details)
        return PaymentOutcome.NOT_APPLIED
    if invoice.status not in InvoiceStatus.OPEN:
        await invoicing.audit(session, invoice, f"payment_received_on_{invoice.status}",
                           f"Payment of {amount} {currency.upper()} received for a {invoice.status} invoice; "
                           "not applied, refund it manually",
                           actor=actor, level="warn", before=invoice.status, after=invoice.status, context=details)
        return PaymentOutcome.NOT_APPLIED
    balance = invoice.balance_due
    full = amount >= balance
    details.update(previousBalanceDue=balance, balanceDue=Decimal(0) if full else balance - amount)
    if amount > balance:
        details["overpaid"] = amount - balance
    await invoicing.apply(session, invoice, "payment", actor=actor, amount=amount, context=details,
                       message="Invoice marked paid" if full else "Partial payment received")
    await dunning.invoice_settled(session, invoice, actor=actor)  # the last unpaid one: servers back on
    return PaymentOutcome.PAID if full else PaymentOutcome.PARTIALLY_PAID


async def mark_paid(session: AsyncSession, invoice: Invoice, *, actor: Actor, reason: str | None = None,
                    admin_user_id: uuid.UUID | None = None) -> None:
    """Admin: issued | partially_paid | overdue → paid, balance 0 (400 `Cannot mark invoice as paid from
    status <status>` otherwise). Its open checkouts are closed after the commit (the reference left payment
    attempts untouched, behavior.md §7.4; an open checkout could then still be paid)."""
    context = {"previousStatus": invoice.status, "previousBalanceDue": invoice.balance_due, "reason": reason,
               "adminUserId": admin_user_id}
    await invoicing.apply(session, invoice, "mark_paid", actor=actor, context=context)
    await dunning.invoice_settled(session, invoice, actor=actor)


async def mark_unpaid(session: AsyncSession, invoice: Invoice, *, actor: Actor, reason: str | None = None,
                      admin_user_id: uuid.UUID | None = None) -> None:
    """Admin: paid → overdue (due date passed) or issued, balance = total (400 `Can only mark unpaid from paid
    status` otherwise)."""
    context = {"previousStatus": invoice.status, "reason": reason, "adminUserId": admin_user_id}
    await invoicing.apply(session, invoice, "mark_unpaid", actor=actor, context=context)
