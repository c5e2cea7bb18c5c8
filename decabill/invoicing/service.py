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

from sqlalchemy import func, select, type_coerce

from decabill import db
from decabill.catalog.validation import text
from decabill.documents import round_cents
from decabill.identity.principal import Principal
from decabill.invoicing import billing, documents, invoices
from decabill.invoicing.documents import Pdf
from decabill.invoicing.errors import InvoiceNotFound
from decabill.invoicing.states import Actor
from decabill.invoicing.views import InvoicesSummaryView, InvoiceView
from decabill.subscriptions.errors import SubscriptionNotFound
from decabill.subscriptions.service import find_own_subscription
from decabill.tenancy import current_tenant
from models.identity import User
from models.invoicing import Invoice, InvoiceStatus, UsageRecord
from models.subscriptions import OpenPosition, Subscription

# --- lookups (inside an open transaction) ----------------------------------------------------------------


async def _tenant_subscription(subscription_id: uuid.UUID) -> Subscription:
    query = db.scoped(Subscription).where(Subscription.id == subscription_id)
    found = (await db.current_session().execute(query)).scalar_one_or_none()
    if found is None:
        raise SubscriptionNotFound(subscription_id)
    return found


async def _subscription_for(principal: Principal, subscription_id: uuid.UUID) -> Subscription:
    """The subscription for owner-or-admin routes: an admin reaches any of the tenant's."""
    user_id = principal.require_user_id()
    if principal.is_admin:
        return await _tenant_subscription(subscription_id)
    return await find_own_subscription(user_id, subscription_id)


async def _invoice(query) -> Invoice:
    found = (await db.current_session().execute(query)).scalar_one_or_none()
    if found is None:
        raise InvoiceNotFound()
    return found


async def _view(invoice: Invoice, *, with_lines: bool = False) -> InvoiceView:
    lines = await invoices.lines_of(db.current_session(), invoice.id) if with_lines else []
    return InvoiceView(invoice, line_items=lines)


def _own(user_id: uuid.UUID, invoice_id: uuid.UUID):
    return db.scoped(Invoice).where(Invoice.id == invoice_id, Invoice.user_id == user_id)


# --- summary and lists -----------------------------------------------------------------------------------


async def get_summary(principal: Principal) -> InvoicesSummaryView:
    user_id = principal.require_user_id()
    async with db.transaction() as session:
        user = (await session.execute(db.scoped(User).where(User.id == user_id))).scalar_one_or_none()
        open_count, open_total = (await session.execute(
            select(func.count(Invoice.id), type_coerce(func.coalesce(func.sum(Invoice.balance_due), 0),
                                                       Invoice.__table__.c.balance_due.type))
            .where(Invoice.tenant_id == current_tenant(), Invoice.user_id == user_id,
                   Invoice.status.in_(InvoiceStatus.OPEN)))).one()
        positions = (await session.execute(
            select(type_coerce(func.coalesce(func.sum(OpenPosition.amount), 0), OpenPosition.__table__.c.amount.type))
            .where(OpenPosition.tenant_id == current_tenant(), OpenPosition.user_id == user_id,
                   OpenPosition.invoice_id.is_(None)))).scalar_one()
        usage = (await session.execute(
            select(type_coerce(func.coalesce(func.sum(UsageRecord.amount), 0), UsageRecord.__table__.c.amount.type))
            .where(UsageRecord.tenant_id == current_tenant(), UsageRecord.user_id == user_id,
                   UsageRecord.invoice_id.is_(None), UsageRecord.amount > 0))).scalar_one()
    return InvoicesSummaryView(
        open_overdue_count=int(open_count), open_overdue_total=round_cents(open_total),
        billing_day_of_month=billing.billing_day(user) if user is not None else 1,
        unbilled_total=round_cents(positions + usage),
    )


async def list_open_overdue(principal: Principal) -> list[InvoiceView]:
    user_id = principal.require_user_id()
    async with db.transaction() as session:
        query = (select(Invoice, Subscription.number)
                 .outerjoin(Subscription, Subscription.id == Invoice.subscription_id)
                 .where(Invoice.tenant_id == current_tenant(), Invoice.user_id == user_id,
                        Invoice.status.in_(InvoiceStatus.OPEN))
                 .order_by(Invoice.created_at.desc(), Invoice.id))
        rows = (await session.execute(query)).all()
    return [InvoiceView(invoice, subscription_number=number) for invoice, number in rows]


async def list_invoices(principal: Principal, subscription_id: uuid.UUID) -> list[InvoiceView]:
    user_id = principal.require_user_id()
    async with db.transaction() as session:
        await find_own_subscription(user_id, subscription_id)
        query = (db.scoped(Invoice).where(Invoice.user_id == user_id, invoices.of_subscription(subscription_id))
                 .order_by(Invoice.created_at.desc(), Invoice.id))
        return [InvoiceView(invoice) for invoice in (await session.execute(query)).scalars()]


# --- one invoice -------------------------------------------------------------------------------------------


async def get_invoice_by_ref(principal: Principal, invoice_id: uuid.UUID) -> InvoiceView:
    user_id = principal.require_user_id()
    async with db.transaction():
        return await _view(await _invoice(_own(user_id, invoice_id)), with_lines=True)


async def get_invoice(principal: Principal, subscription_id: uuid.UUID, invoice_id: uuid.UUID) -> InvoiceView:
    user_id = principal.require_user_id()
    async with db.transaction():
        await find_own_subscription(user_id, subscription_id)
        invoice = await _invoice(_own(user_id, invoice_id).where(invoices.of_subscription(subscription_id)))
        return await _view(invoice, with_lines=True)


# --- documents ---------------------------------------------------------------------------------------------


async def pdf_by_ref(principal: Principal, invoice_id: uuid.UUID, *, credit_note: bool = False) -> Pdf:
    user_id = principal.require_user_id()
    async with db.transaction():
        invoice = await _invoice(_own(user_id, invoice_id))
    return await documents.downloadable_pdf(invoice, credit_note=credit_note)


async def pdf_of_subscription(principal: Principal, subscription_id: uuid.UUID, invoice_id: uuid.UUID, *,
                              credit_note: bool = False) -> Pdf:
    async with db.transaction():
        subscription = await _subscription_for(principal, subscription_id)
        invoice = await _invoice(db.scoped(Invoice).where(
            Invoice.id == invoice_id, Invoice.user_id == subscription.user_id, invoices.of_subscription(subscription_id)))
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
        subscription = await _tenant_subscription(subscription_id)
        query = db.scoped(Invoice).where(Invoice.id == invoice_id, Invoice.user_id == subscription.user_id,
                                         invoices.of_subscription(subscription_id))
        invoice = await _invoice(db.for_update(query))
        await invoices.void(session, invoice, actor=Actor.of(principal), context={"adminUserId": admin_id})
    return InvoiceView(invoice)
