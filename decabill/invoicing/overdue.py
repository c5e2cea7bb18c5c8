"""Overdue invoices (behavior.md part B §3.7): `issued` or `partially_paid` with a due date before today
(UTC) become `overdue`; due today is not overdue. The balance stays as it is.

The coordinator pages through the tenant's candidates (INVOICE_OVERDUE_SCHEDULER_BATCH_SIZE per page,
every page) and sends one unit per invoice; the unit claims the row (`FOR UPDATE SKIP LOCKED`), re-checks
and moves it through the state machine (audit entry `invoice.overdue` in the same transaction). An
"invoice overdue" mail is recorded once per invoice (the issue asks for it; the reference sends none).
"""

from __future__ import annotations

import datetime as dt
import uuid

from decabill import db
from decabill.invoicing import invoices, mail, states
from decabill.invoicing.repository import InvoiceRepository
from decabill.invoicing.states import SYSTEM
from models.invoicing import InvoiceStatus

CANDIDATES = (InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID)


def _today(now: dt.datetime | None) -> dt.date:
    return (now or db.utcnow()).astimezone(dt.timezone.utc).date()


async def due_for_overdue(batch_size: int, *, now: dt.datetime | None = None) -> list[uuid.UUID]:
    """Ids of every invoice of the tenant that is past due, read page by page (keyset on (due date, id))."""
    today = _today(now)
    found: list[uuid.UUID] = []
    after: tuple[dt.date, uuid.UUID] | None = None
    while True:
        async with db.transaction() as session:
            page = await InvoiceRepository(session).past_due_ids(CANDIDATES, today, batch_size, after)
        found.extend(invoice_id for invoice_id, _due in page)
        if not batch_size or len(page) < batch_size:
            return found
        last_id, last_due = page[-1]
        after = (last_due, last_id)


async def mark_overdue(invoice_id: uuid.UUID, *, now: dt.datetime | None = None) -> str:
    """The overdue unit: `overdue`, or why not (`not_due`, `busy`)."""
    now = now or db.utcnow()
    async with db.transaction() as session:
        invoice = await InvoiceRepository(session).claim_past_due(invoice_id, CANDIDATES, _today(now))
        if invoice is None:
            return "not_due"
        await states.apply(session, invoice, "overdue", actor=SYSTEM, now=now,
                           context={"dueDate": invoice.due_date, "balanceDue": invoice.balance_due})
        await mail.record(session, key=f"invoice-overdue:{invoice.id}", kind=mail.INVOICE_OVERDUE,
                          recipient=await invoices.recipient(session, invoice), invoice_id=invoice.id)
    return "overdue"
