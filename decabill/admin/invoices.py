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
from collections.abc import Awaitable

from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.admin.errors import AdminInvoiceNotFound
from decabill.admin.page_cache import admin_pages
from decabill.admin.views import AdminInvoiceView, AuditEntryView, Page
from decabill.identity.principal import Principal
from decabill.identity.service import user_email
from decabill.invoicing import service as invoicing
from decabill.invoicing.service import Pdf
from decabill.invoicing.errors import InvoiceNotFound
from decabill.invoicing.repository import InvoiceAuditLogRepository, InvoiceCountRepository, InvoiceRepository
from decabill.shapes import Json, json_fields
from decabill.subscriptions.service import subscription_number
from models.invoicing import Invoice

# --- shared by the admin operations on one invoice (in the caller's transaction) -----------------------------


async def locked_invoice(session: AsyncSession, invoice_id: uuid.UUID) -> Invoice:
    """The tenant's invoice, row-locked for a change; 404 `Invoice <id> not found` otherwise."""
    invoice = await invoicing.locked(session, invoice_id)
    if invoice is None:
        raise AdminInvoiceNotFound(invoice_id)
    return invoice


async def list_view(invoice: Invoice) -> AdminInvoiceView:
    number = await subscription_number(invoice.subscription_id) if invoice.subscription_id else None
    return AdminInvoiceView(invoice, subscription_number=number, user_email=await user_email(invoice.user_id))


async def detail_view(session: AsyncSession, invoice: Invoice) -> AdminInvoiceView:
    view = await list_view(invoice)
    view.line_items = await invoicing.lines_of(session, invoice.id)
    return view


# --- lists -------------------------------------------------------------------------------------------------


async def list_invoices(principal: Principal, *, limit: int, offset: int, search: str | None = None,
                        user_id: uuid.UUID | None = None, open_only: bool = False) -> Page:
    """A page of the tenant's invoices; on PostgreSQL its items are the JSON the database wrote (`Json`), kept by
    the process and answered again while the list is unchanged (`page_cache`), else the views."""
    filters = {"search": search, "user_id": user_id, "open_only": open_only}
    async with db.read() as session:
        invoices = InvoiceRepository(session)
        if invoices.writes_json:
            def read() -> Awaitable[tuple[str, int, int | None]]:
                return invoices.search_page_json(limit=limit, offset=offset,
                                                 shape=json_fields("AdminInvoiceListItem"), **filters)

            written, total = await admin_pages.page((limit, offset, search, user_id, open_only),
                                                    InvoiceCountRepository(session).list_version, read)
            return Page(Json(written), total, limit, offset)
        rows, total = await invoices.search_page(limit=limit, offset=offset, **filters)
    items = [AdminInvoiceView(invoice, subscription_number=number, user_email=email) for invoice, number, email in rows]
    return Page(items, total, limit, offset)


# --- one invoice -------------------------------------------------------------------------------------------


async def get_invoice(principal: Principal, invoice_id: uuid.UUID) -> AdminInvoiceView:
    async with db.transaction() as session:
        invoice = await InvoiceRepository(session).get(invoice_id)
        if invoice is None:
            raise AdminInvoiceNotFound(invoice_id)
        return await detail_view(session, invoice)


async def invoice_pdf(principal: Principal, invoice_id: uuid.UUID, *, credit_note: bool = False) -> Pdf:
    """The invoice PDF (not for drafts) or the credit note (void invoices only), made by the invoicing area."""
    async with db.transaction() as session:
        invoice = await InvoiceRepository(session).get(invoice_id)
    if invoice is None:
        raise InvoiceNotFound()
    return await invoicing.downloadable_pdf(invoice, credit_note=credit_note)


async def audit_log(principal: Principal, invoice_id: uuid.UUID, *, limit: int, offset: int) -> Page:
    async with db.transaction() as session:
        entries, total = await InvoiceAuditLogRepository(session).page_of_invoice(invoice_id, limit, offset)
        if not total and await InvoiceRepository(session).get(invoice_id) is None:
            raise AdminInvoiceNotFound(invoice_id)
    return Page([AuditEntryView(entry) for entry in entries], total, limit, offset)
