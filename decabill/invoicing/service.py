"""Customer invoice operations (behavior.md part B §3.8–§3.10, §4.5).

Rules every operation here shares
* The caller must be a user (the static API key gets 400 `User not authenticated`).
* A user sees only their own invoices and subscriptions; another user's or another tenant's id is 404,
  exactly like an unknown one (the reference answered 400 `Subscription does not belong to user` for
  another user's subscription; we never confirm that it exists). The subscription-scoped PDF downloads are
  also open to admins, `createInvoice` and `voidInvoice` are admin-only (any subscription of the tenant).
* An invoice belongs to a subscription when it was made for it or has a line of it — an invoice of the
  billing day that covers several subscriptions is listed under each of them.
* The `ref` routes reach every own invoice, drafts included.
"""

from __future__ import annotations

import uuid

import structlog

from decabill import db
from decabill.jobs.queue import enqueue
from decabill.tenancy import current_tenant
from decabill.shapes import Json, json_fields
from decabill.validation import text
from decabill.documents import round_cents
from decabill.identity.principal import Principal
from decabill.invoicing import billing, documents, invoices

# The building blocks of every invoicing path, re-exported (`name as name`) for the other domains (admin
# billing, payments): they call them here, never the modules that write them.
from decabill.invoicing.billing import BillingResult as BillingResult
from decabill.invoicing.billing import bill_user as bill_user
from decabill.invoicing.billing import users_with_unbilled as users_with_unbilled
from decabill.invoicing.documents import downloadable_pdf as downloadable_pdf
from decabill.invoicing.invoices import DEFAULT_DUE_IN_DAYS as DEFAULT_DUE_IN_DAYS
from decabill.invoicing.invoices import LineInput as LineInput
from decabill.invoicing.invoices import create_draft as create_draft
from decabill.invoicing.invoices import delete_draft as delete_draft
from decabill.invoicing.invoices import issue as issue
from decabill.invoicing.invoices import lines_of as lines_of
from decabill.invoicing.invoices import locked as locked
from decabill.invoicing.invoices import past_due_of_user as past_due_of_user
from decabill.invoicing.invoices import recipient as recipient
from decabill.invoicing.invoices import set_dunning_level as set_dunning_level
from decabill.invoicing.mail import record_dunning_mail as record_dunning_mail
from decabill.invoicing.invoices import replace_lines as replace_lines
from decabill.invoicing.invoices import require_non_negative_total as require_non_negative_total
from decabill.invoicing.invoices import void as void
from decabill.invoicing.states import SYSTEM as SYSTEM
from decabill.invoicing.states import apply as apply
from decabill.invoicing.states import audit as audit
from decabill.invoicing.states import audit_unbound as audit_unbound

from decabill.invoicing import monitoring as monitoring  # what the operator's metrics read
from decabill.invoicing import billing_day as billing_day  # `decabill bill-day`
from decabill.invoicing.errors import DocumentsNotRendered as DocumentsNotRendered
from decabill.invoicing.documents import Pdf as Pdf
from decabill.invoicing.errors import InvoiceNotFound
from decabill.invoicing.repository import InvoiceLineRepository, InvoiceRepository
from decabill.invoicing.states import Actor as Actor
from decabill.invoicing.views import InvoicesSummaryView
from decabill.invoicing.views import InvoiceView as InvoiceView
from decabill.subscriptions.errors import SubscriptionNotFound
from decabill.subscriptions.service import find_own_subscription, find_subscription
from models.invoicing import Invoice
from models.subscriptions import Subscription

log = structlog.get_logger("decabill.invoicing")

# --- lookups --------------------------------------------------------------------------------------------


async def _subscription_for(principal: Principal, subscription_id: uuid.UUID) -> Subscription:
    """The subscription for owner-or-admin routes: an admin reaches any of the tenant's."""
    user_id = principal.require_user_id()
    if principal.is_admin:
        return await find_subscription(subscription_id)
    return await find_own_subscription(user_id, subscription_id)


def _found(invoice: Invoice | None) -> Invoice:
    if invoice is None:
        raise InvoiceNotFound()
    return invoice


async def _view(invoice: Invoice, lines: InvoiceLineRepository) -> InvoiceView:
    return InvoiceView(invoice, line_items=await lines.of_invoice(invoice.id))


# --- summary and lists -----------------------------------------------------------------------------------


async def get_summary(principal: Principal) -> InvoicesSummaryView:
    user_id = principal.require_user_id()
    async with db.read() as session:  # one round trip for the five figures
        stored_day, registered, open_count, open_total, positions, usage = \
            await InvoiceRepository(session).summary_of_user(user_id)
    return InvoicesSummaryView(
        open_overdue_count=int(open_count), open_overdue_total=round_cents(open_total),
        billing_day_of_month=billing.billing_day_of(stored_day, registered) if registered is not None else 1,
        unbilled_total=round_cents(positions + usage),
    )


async def list_open_overdue(principal: Principal) -> list[InvoiceView] | Json:
    """The user's open and overdue invoices; on PostgreSQL as the JSON the database wrote, else the views."""
    user_id = principal.require_user_id()
    async with db.read() as session:
        invoices = InvoiceRepository(session)
        if invoices.writes_json:
            return Json(await invoices.open_of_user_json(user_id, json_fields("InvoiceResponse")))
        rows = await invoices.open_of_user_with_number(user_id)
    return [InvoiceView(invoice, subscription_number=number) for invoice, number in rows]


async def list_invoices(principal: Principal, subscription_id: uuid.UUID) -> list[InvoiceView] | Json:
    """The user's invoices of the subscription (404 unless it is theirs); on PostgreSQL as the JSON the database
    wrote, else the views."""
    user_id = principal.require_user_id()
    async with db.read() as session:  # the ownership check and the list in one statement
        invoices = InvoiceRepository(session)
        if invoices.writes_json:
            written = await invoices.of_own_subscription_json(user_id, subscription_id, json_fields("InvoiceResponse"))
            found: list[InvoiceView] | Json | None = None if written is None else Json(written)
        else:
            records = await invoices.of_own_subscription(user_id, subscription_id)
            found = None if records is None else [InvoiceView(invoice) for invoice in records]
    if found is None:
        raise SubscriptionNotFound(subscription_id)
    return found


# --- one invoice -------------------------------------------------------------------------------------------


async def get_invoice_by_ref(principal: Principal, invoice_id: uuid.UUID) -> InvoiceView:
    user_id = principal.require_user_id()
    async with db.transaction() as session:
        invoice = _found(await InvoiceRepository(session).get_of_user(invoice_id, user_id))
        return await _view(invoice, InvoiceLineRepository(session))


async def get_invoice(principal: Principal, subscription_id: uuid.UUID, invoice_id: uuid.UUID) -> InvoiceView:
    user_id = principal.require_user_id()
    async with db.transaction() as session:
        await find_own_subscription(user_id, subscription_id)
        invoice = _found(await InvoiceRepository(session).get_of_user(invoice_id, user_id,
                                                                       subscription_id=subscription_id))
        return await _view(invoice, InvoiceLineRepository(session))


# --- documents ---------------------------------------------------------------------------------------------


async def pdf_by_ref(principal: Principal, invoice_id: uuid.UUID, *, credit_note: bool = False) -> Pdf:
    user_id = principal.require_user_id()
    async with db.transaction() as session:
        invoice = _found(await InvoiceRepository(session).get_of_user(invoice_id, user_id))
    return await documents.downloadable_pdf(invoice, credit_note=credit_note)


async def pdf_of_subscription(principal: Principal, subscription_id: uuid.UUID, invoice_id: uuid.UUID, *,
                              credit_note: bool = False) -> Pdf:
    async with db.transaction() as session:
        subscription = await _subscription_for(principal, subscription_id)
        invoice = _found(await InvoiceRepository(session).get_of_user(invoice_id, subscription.user_id,
                                                                       subscription_id=subscription_id))
    return await documents.downloadable_pdf(invoice, credit_note=credit_note)


# --- admin actions on the customer routes --------------------------------------------------------------------


async def create_invoice(principal: Principal, subscription_id: uuid.UUID, description: str | None) -> InvoiceView:
    """`createInvoice` (admin): bill the subscription's accrued time and usage now (see billing.py)."""
    principal.require_user_id()
    if description is not None:
        description = text(description, "Description", max_length=500)
    invoice = await billing.charge_subscription(subscription_id, description, actor=Actor.of(principal))
    return InvoiceView(invoice)


async def void_invoice(principal: Principal, subscription_id: uuid.UUID, invoice_id: uuid.UUID) -> InvoiceView:
    """`voidInvoice` (admin): void an unpaid issued invoice of the subscription; its credit note is mailed."""
    admin_id = principal.require_user_id()
    async with db.transaction() as session:
        subscription = await find_subscription(subscription_id)
        invoice = _found(await InvoiceRepository(session).get_of_user(
            invoice_id, subscription.user_id, subscription_id=subscription_id, for_update=True))
        await invoices.void(session, invoice, actor=Actor.of(principal), context={"adminUserId": admin_id})
        db.after_commit(lambda: _settled(invoice.user_id))
    return InvoiceView(invoice)


async def _settled(user_id: uuid.UUID) -> None:
    """A voided invoice counts as settled for dunning (a layer above): its unit for the customer lifts a
    suspension that nothing justifies any more (sent by name: tasks are never imported by services)."""
    try:
        await enqueue("dunning.run_customer", current_tenant(), str(user_id))
    except Exception as exc:  # noqa: BLE001 - the dunning job's next run does the same
        log.warning("invoicing.dunning_enqueue_failed", error=str(exc))
