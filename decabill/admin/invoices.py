"""Admin view of the tenant's invoices (behavior.md part B §4.5, §7.2, §7.5; D17): lists, one invoice,
its PDFs, its audit trail — plus the lookups the other admin modules share.

* `listAdminInvoices`: every invoice of the tenant in every status, newest first, paginated, with the
  owner and the subscription number; `search` is a case-insensitive fragment of the invoice number, the
  subscription number, the owner's email, the invoice id or the user id; `userId` restricts to one owner.
* `listAdminOpenOverdueInvoices` (deprecated): the same, only issued, partially paid and overdue (D17 —
  the reference returned every invoice).
* An invoice of another tenant is `Invoice <id> not found` (404), like a missing one. The PDF routes
  answer the invoicing area's messages (`Invoice not found`, drafts have no PDF, no credit note unless void).
* The audit trail of an invoice id is listed even when the invoice no longer exists (a deleted draft
  keeps its entries). An id that is neither an invoice of the tenant nor named by any of its entries is
  404 `Invoice <id> not found` (the contract documents the 404; the reference answered an empty page).
"""

from __future__ import annotations

import uuid

from sqlalchemy import String, cast, func, or_, select

from decabill import db
from decabill.admin.errors import AdminInvoiceNotFound
from decabill.admin.views import AdminInvoiceView, AuditEntryView, Page
from decabill.identity.principal import Principal
from decabill.invoicing import documents, invoices
from decabill.invoicing.documents import Pdf
from decabill.invoicing.errors import InvoiceNotFound
from decabill.tenancy import current_tenant
from models.identity import User
from models.invoicing import Invoice, InvoiceAuditLog, InvoiceStatus
from models.subscriptions import Subscription

# --- shared lookups (inside an open transaction) -----------------------------------------------------------


async def user_email(user_id: uuid.UUID) -> str | None:
    query = select(User.email).where(User.tenant_id == current_tenant(), User.id == user_id)
    return (await db.current_session().execute(query)).scalar_one_or_none()


async def subscription_number(subscription_id: uuid.UUID | None) -> str | None:
    if subscription_id is None:
        return None
    query = select(Subscription.number).where(Subscription.tenant_id == current_tenant(),
                                              Subscription.id == subscription_id)
    return (await db.current_session().execute(query)).scalar_one_or_none()


async def locked_invoice(invoice_id: uuid.UUID) -> Invoice:
    """The tenant's invoice, row-locked for a change; 404 `Invoice <id> not found` otherwise."""
    invoice = await invoices.locked(db.current_session(), invoice_id)
    if invoice is None:
        raise AdminInvoiceNotFound(invoice_id)
    return invoice


async def list_view(invoice: Invoice) -> AdminInvoiceView:
    return AdminInvoiceView(invoice, subscription_number=await subscription_number(invoice.subscription_id),
                            user_email=await user_email(invoice.user_id))


async def detail_view(invoice: Invoice) -> AdminInvoiceView:
    view = await list_view(invoice)
    view.line_items = await invoices.lines_of(db.current_session(), invoice.id)
    return view


# --- lists -------------------------------------------------------------------------------------------------


def _id_text(column):
    """The id as its canonical lower-case text: PostgreSQL casts a uuid so; SQLite stores 32 hex digits."""
    if db.dialect_name() == "postgresql":
        return cast(column, String)
    text = func.lower(cast(column, String))
    return (func.substr(text, 1, 8) + "-" + func.substr(text, 9, 4) + "-" + func.substr(text, 13, 4) + "-"
            + func.substr(text, 17, 4) + "-" + func.substr(text, 21, 12))


def _matches(search: str):
    fragment = search.strip().lower()
    columns = [Invoice.invoice_number, Subscription.number, User.email, _id_text(Invoice.id), _id_text(Invoice.user_id)]
    return or_(*(func.lower(column).contains(fragment, autoescape=True) for column in columns))


async def list_invoices(principal: Principal, *, limit: int, offset: int, search: str | None = None,
                        user_id: uuid.UUID | None = None, open_only: bool = False) -> Page:
    conditions = [Invoice.tenant_id == current_tenant()]
    if user_id is not None:
        conditions.append(Invoice.user_id == user_id)
    if open_only:
        conditions.append(Invoice.status.in_(InvoiceStatus.OPEN))
    if search and search.strip():
        conditions.append(_matches(search))

    def joined(query):
        return (query.select_from(Invoice)
                .outerjoin(Subscription, Subscription.id == Invoice.subscription_id)
                .outerjoin(User, User.id == Invoice.user_id)
                .where(*conditions))

    async with db.transaction() as session:
        total = (await session.execute(joined(select(func.count(Invoice.id))))).scalar_one()
        query = joined(select(Invoice, Subscription.number, User.email)).order_by(Invoice.created_at.desc(),
                                                                                  Invoice.id.desc())
        rows = (await session.execute(db.page(query, limit, offset))).all()
    items = [AdminInvoiceView(invoice, subscription_number=number, user_email=email) for invoice, number, email in rows]
    return Page(items, int(total), limit, offset)


# --- one invoice -------------------------------------------------------------------------------------------


async def get_invoice(principal: Principal, invoice_id: uuid.UUID) -> AdminInvoiceView:
    async with db.transaction() as session:
        invoice = (await session.execute(db.scoped(Invoice).where(Invoice.id == invoice_id))).scalar_one_or_none()
        if invoice is None:
            raise AdminInvoiceNotFound(invoice_id)
        return await detail_view(invoice)


async def invoice_pdf(principal: Principal, invoice_id: uuid.UUID, *, credit_note: bool = False) -> Pdf:
    """The invoice PDF (not for drafts) or the credit note (void invoices only), made by the invoicing area."""
    async with db.transaction() as session:
        invoice = (await session.execute(db.scoped(Invoice).where(Invoice.id == invoice_id))).scalar_one_or_none()
    if invoice is None:
        raise InvoiceNotFound()
    return await documents.downloadable_pdf(invoice, credit_note=credit_note)


async def audit_log(principal: Principal, invoice_id: uuid.UUID, *, limit: int, offset: int) -> Page:
    conditions = (InvoiceAuditLog.tenant_id == current_tenant(), InvoiceAuditLog.invoice_id == invoice_id)
    async with db.transaction() as session:
        total = (await session.execute(select(func.count(InvoiceAuditLog.id)).where(*conditions))).scalar_one()
        query = select(InvoiceAuditLog).where(*conditions).order_by(InvoiceAuditLog.created_at.desc(),
                                                                    InvoiceAuditLog.id.desc())
        entries = list((await session.execute(db.page(query, limit, offset))).scalars())
        if not total and (await session.execute(select(Invoice.id).where(
                Invoice.tenant_id == current_tenant(), Invoice.id == invoice_id))).first() is None:
            raise AdminInvoiceNotFound(invoice_id)
    return Page([AuditEntryView(entry) for entry in entries], int(total), limit, offset)
