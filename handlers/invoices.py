"""Customer invoices: /invoices (PDFs are answered as `application/pdf` attachments)."""

import uuid

from decabill.invoicing import service as invoicing
from handlers._http import admin_only, dump, dump_list, pdf_attachment, principal


async def get_invoices_summary(token_info: dict):
    summary = await invoicing.get_summary(principal(token_info))
    return dump(summary, "InvoicesSummaryResponse"), 200


async def list_open_overdue_invoices(token_info: dict):
    found = await invoicing.list_open_overdue(principal(token_info))
    return dump_list(found, "InvoiceResponse"), 200


async def get_invoice_details_by_ref(invoice_ref_id: str, token_info: dict):
    found = await invoicing.get_invoice_by_ref(principal(token_info), uuid.UUID(invoice_ref_id))
    return dump(found, "InvoiceDetailResponse"), 200


async def download_invoice_pdf_by_ref(invoice_ref_id: str, token_info: dict):
    return pdf_attachment(await invoicing.pdf_by_ref(principal(token_info), uuid.UUID(invoice_ref_id)))


async def download_invoice_void_document_pdf_by_ref(invoice_ref_id: str, token_info: dict):
    found = await invoicing.pdf_by_ref(principal(token_info), uuid.UUID(invoice_ref_id), credit_note=True)
    return pdf_attachment(found)


async def list_invoices(subscription_id: str, token_info: dict):
    found = await invoicing.list_invoices(principal(token_info), uuid.UUID(subscription_id))
    return dump_list(found, "InvoiceResponse"), 200


@admin_only
async def create_invoice(subscription_id: str, token_info: dict, body: dict | bytes | None = None):
    # The body is optional; sent without a JSON content type, Connexion hands over its raw bytes.
    description = body.get("description") if isinstance(body, dict) else None
    created = await invoicing.create_invoice(principal(token_info), uuid.UUID(subscription_id), description)
    return dump(created, "CreateInvoiceResponse"), 200


async def get_invoice_details(subscription_id: str, invoice_ref_id: str, token_info: dict):
    found = await invoicing.get_invoice(principal(token_info), uuid.UUID(subscription_id), uuid.UUID(invoice_ref_id))
    return dump(found, "InvoiceDetailResponse"), 200


async def download_invoice_pdf(subscription_id: str, invoice_ref_id: str, token_info: dict):
    return pdf_attachment(await invoicing.pdf_of_subscription(principal(token_info), uuid.UUID(subscription_id),
                                                              uuid.UUID(invoice_ref_id)))


async def download_invoice_void_document_pdf(subscription_id: str, invoice_ref_id: str, token_info: dict):
    return pdf_attachment(await invoicing.pdf_of_subscription(principal(token_info), uuid.UUID(subscription_id),
                                                              uuid.UUID(invoice_ref_id), credit_note=True))


@admin_only
async def void_invoice(subscription_id: str, invoice_ref_id: str, token_info: dict):
    voided = await invoicing.void_invoice(principal(token_info), uuid.UUID(subscription_id), uuid.UUID(invoice_ref_id))
    return dump(voided, "InvoiceResponse"), 200
