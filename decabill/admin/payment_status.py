"""Payment status set by an admin (behavior.md part B §3.2, §7.4; D11): mark paid, mark unpaid, void.

Mark paid / unpaid are the payments area's settlement functions (`decabill.payments.settlement`, also used
by the payment webhook), void is the invoicing area's; all of them go through the invoice state machine
(`decabill.invoicing.states`), the one place where an invoice's status changes, so the allowed
transitions, their side effects and the audit entry (who, before → after, when, request id, in the same
transaction) are the same whichever way an invoice is paid or reopened:

| action      | allowed from                       | result                                                   | otherwise (400) |
|-------------|------------------------------------|----------------------------------------------------------|-----------------|
| mark paid   | issued, partially_paid, overdue    | paid, balance 0                                          | `Cannot mark invoice as paid from status <status>` |
| mark unpaid | paid                               | overdue when the due date has passed, else issued; owes its gross total again | `Can only mark unpaid from paid status` |
| void        | issued, partially_paid, overdue (numbered) | void, balance 0, credit note `<number>-CN` mailed (invoicing's `void`) | paid: `Cannot void a paid invoice`; draft: `Only issued invoices with an invoice number can be voided` |

Voiding an invoice that is already void changes nothing and answers it as it is (reference). Manual
invoices without a subscription are voided like any other (D11). The invoice row is locked for the change,
so an admin action and a payment webhook on the same invoice are applied one after the other, each
against the status the other left. An admin *user* is needed (the API key → 400 `User not authenticated`).
"""

from __future__ import annotations

import uuid

from decabill import db
from decabill.admin import invoices as admin_invoices
from decabill.admin.views import AdminInvoiceView
from decabill.dunning import service as dunning
from decabill.identity.principal import Principal
from decabill.invoicing import service as invoicing
from decabill.invoicing.service import Actor
from decabill.payments import service as payments


def _reason(reason: str | None) -> str | None:
    return (reason or "").strip()[:500] or None


async def mark_paid(principal: Principal, invoice_id: uuid.UUID, reason: str | None = None) -> AdminInvoiceView:
    admin_id = principal.require_user_id()
    async with db.transaction() as session:
        invoice = await admin_invoices.locked_invoice(session, invoice_id)
        await payments.mark_paid(session, invoice, actor=Actor.of(principal), reason=_reason(reason),
                                   admin_user_id=admin_id)
        return await admin_invoices.list_view(invoice)


async def mark_unpaid(principal: Principal, invoice_id: uuid.UUID, reason: str | None = None) -> AdminInvoiceView:
    admin_id = principal.require_user_id()
    async with db.transaction() as session:
        invoice = await admin_invoices.locked_invoice(session, invoice_id)
        await payments.mark_unpaid(session, invoice, actor=Actor.of(principal), reason=_reason(reason),
                                     admin_user_id=admin_id)
        return await admin_invoices.list_view(invoice)


async def void(principal: Principal, invoice_id: uuid.UUID) -> AdminInvoiceView:
    admin_id = principal.require_user_id()
    async with db.transaction() as session:
        invoice = await admin_invoices.locked_invoice(session, invoice_id)
        await invoicing.void(session, invoice, actor=Actor.of(principal), context={"adminUserId": admin_id})
        await dunning.invoice_settled(session, invoice, actor=Actor.of(principal))  # void counts as settled
        return await admin_invoices.list_view(invoice)
