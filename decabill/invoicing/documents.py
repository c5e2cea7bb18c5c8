"""Invoice and credit-note PDFs (Factur-X EN 16931, built by `decabill.documents`) and where they are kept
(behavior.md part B §4, D16).

* The documents are made from what the invoice row holds: its lines, its totals, and the seller and buyer
  copied onto it when it was issued — not from today's profile or BILLING_ISSUER_* — so a PDF generated
  again (file lost, BILLING_SKIP_FILE_CACHE=true) says what the first one said. The invoice PDF shows the
  invoice as issued (amount due = total); what has been paid since is in the API's balance.
* Files live under BILLING_INVOICE_PDF_STORAGE_PATH (default `<DECABILL_DATA_DIR>/invoices`) at
  `<tenant>/<subscription id | manual/<user id>>/<invoice id>.pdf` and `...-void.pdf`; a key that would
  resolve outside that folder is refused. A file is written to a temporary name and renamed, so a reader
  never sees half a PDF; two concurrent generations just write the same content twice.
* A file is generated when it is first needed (the issued/void mail, or a download) and read from disk
  afterwards, unless BILLING_SKIP_FILE_CACHE=true.
* Rendering runs outside any database transaction: in a worker thread for one document (a download, a
  mail), in the render pool's processes for the billing day's batches (`invoice_pdfs`, `render_pool`), which
  also write the files they render.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog

from decabill import db
from decabill.config import get_settings
from decabill.documents import (
    STANDARD_RATED,
    ZERO_RATED,
    InvoiceDocument,
    Issuer,
    Party,
    VoidDocument,
    breakdown,
    render_invoice_pdf,
    render_void_pdf,
    round_cents,
    tax_category_code,
)
from decabill.documents import InvoiceLine as DocumentLine
from decabill.documents.money import plain
from decabill.invoicing import render_pool
from decabill.invoicing.errors import DraftHasNoPdf, IssuerNotConfigured, NotVoid
from decabill.invoicing.repository import InvoiceLineRepository, InvoiceRepository
from decabill.observability import calls
from decabill.taxes import service as taxes
from models.customers import CustomerProfile
from models.invoicing import Invoice, InvoiceLine, InvoiceStatus

log = structlog.get_logger("decabill.invoicing")


@dataclass(frozen=True)
class Pdf:
    filename: str
    content: bytes


# --- seller and buyer, copied onto the invoice at issue -------------------------------------------------


def seller_snapshot() -> dict[str, Any]:
    settings = get_settings()
    missing = settings.billing_issuer_missing
    if missing:
        raise IssuerNotConfigured(missing)
    return {
        "name": settings.billing_issuer_name, "vat_id": settings.billing_issuer_vat_id,
        "address_line1": settings.billing_issuer_address_line1, "postal_code": settings.billing_issuer_postal_code,
        "city": settings.billing_issuer_city, "country": settings.billing_issuer_country,
        "email": settings.billing_issuer_email, "bank": settings.billing_issuer_bank,
        "iban": settings.billing_issuer_iban, "bic": settings.billing_issuer_bic,
    }


def buyer_snapshot(profile: CustomerProfile, *, vat_id: str | None = None) -> dict[str, Any]:
    """The buyer as the invoice keeps it; `vat_id` is the VAT ID the tax rule put on the invoice (if any)."""
    full_name = " ".join(part.strip() for part in (profile.first_name, profile.last_name) if part and part.strip())
    return {
        "name": (profile.company or "").strip() or full_name or "Customer",
        "first_name": (profile.first_name or "").strip() or None,
        "address_line1": profile.address_line1, "address_line2": profile.address_line2 or None,
        "postal_code": profile.postal_code, "city": profile.city, "country": profile.country,
        "email": (profile.email or "").strip() or None, "vat_id": vat_id,
    }


# --- rows -> document inputs ------------------------------------------------------------------------


def _category_code(line: InvoiceLine) -> str:
    if line.vat_category_code not in (None, STANDARD_RATED):
        return line.vat_category_code  # AE, O, ... as the tax rule (or an admin) set it
    return ZERO_RATED if line.tax_rate == 0 else tax_category_code(line.tax_category)


def _document_lines(lines: list[InvoiceLine]) -> list[DocumentLine]:
    return [
        DocumentLine(
            description=line.description, quantity=plain(line.quantity), unit_price=plain(line.unit_price_net),
            tax_category=_category_code(line), tax_rate=plain(line.tax_rate),
            net_amount=round_cents(line.line_net), tax_amount=round_cents(line.line_tax),
            gross_amount=round_cents(line.line_gross),
        )
        for line in sorted(lines, key=lambda line: line.position)
    ]


def _issuer(invoice: Invoice) -> Issuer:
    seller = invoice.seller or {}
    return Issuer(name=seller.get("name") or "", address_line1=seller.get("address_line1"),
                  postal_code=seller.get("postal_code"), city=seller.get("city"), country=seller.get("country"),
                  vat_id=seller.get("vat_id"), email=seller.get("email"), bank=seller.get("bank"),
                  iban=seller.get("iban"), bic=seller.get("bic"))


def _customer(invoice: Invoice) -> Party:
    buyer = invoice.buyer or {}
    return Party(name=buyer.get("name") or "Customer", address_line1=buyer.get("address_line1"),
                 address_line2=buyer.get("address_line2"), postal_code=buyer.get("postal_code"),
                 city=buyer.get("city"), country=buyer.get("country"), email=buyer.get("email"),
                 vat_id=buyer.get("vat_id"))


def _tax_texts(invoice: Invoice) -> tuple[str | None, str | None]:
    """(rule label, legal note) of an issued invoice, from its snapshot."""
    snapshot = invoice.tax_snapshot or {}
    return (taxes.rule_label(invoice.tax_rule, snapshot.get("taxCountry")),
            taxes.legal_note(invoice.tax_rule, snapshot.get("buyerVatId")))


def invoice_document(invoice: Invoice, lines: list[InvoiceLine]) -> InvoiceDocument:
    assert invoice.invoice_number and invoice.issued_at, "only issued invoices have a document"
    document_lines = _document_lines(lines)
    total = round_cents(invoice.total_gross)
    rule, note = _tax_texts(invoice)
    return InvoiceDocument(
        number=invoice.invoice_number, issue_date=invoice.issued_at.date(), currency=invoice.currency,
        issuer=_issuer(invoice), customer=_customer(invoice), lines=document_lines,
        tax_breakdown=breakdown(document_lines), subtotal=round_cents(invoice.subtotal_net),
        tax_total=round_cents(invoice.tax_total), total=total, amount_paid=Decimal("0.00"), amount_due=total,
        due_date=invoice.due_date,
        payment_note=f"Please quote the invoice number {invoice.invoice_number} with your payment.",
        service_period_start=invoice.period_start.date() if invoice.period_start else None,
        service_period_end=invoice.period_end.date() if invoice.period_end else None,
        order_reference=invoice.order_reference, tax_rule=rule, note=note, issued_at=invoice.issued_at,
    )


def void_document(invoice: Invoice, lines: list[InvoiceLine]) -> VoidDocument:
    assert invoice.credit_note_number and invoice.voided_at and invoice.invoice_number
    document_lines = _document_lines(lines)
    return VoidDocument(
        number=invoice.credit_note_number, voided_invoice_number=invoice.invoice_number,
        voided_invoice_date=invoice.issued_at.date() if invoice.issued_at else None,
        issue_date=invoice.voided_at.date(), reason=invoice.void_reason or "Invoice voided",
        currency=invoice.currency, issuer=_issuer(invoice), customer=_customer(invoice), lines=document_lines,
        tax_breakdown=breakdown(document_lines), subtotal=round_cents(invoice.subtotal_net),
        tax_total=round_cents(invoice.tax_total), total=round_cents(invoice.total_gross),
        service_period_start=invoice.period_start.date() if invoice.period_start else None,
        service_period_end=invoice.period_end.date() if invoice.period_end else None,
        order_reference=invoice.order_reference, tax_rule=_tax_texts(invoice)[0], issued_at=invoice.voided_at,
    )


# --- storage ------------------------------------------------------------------------------------


def storage_key(invoice: Invoice, *, credit_note: bool = False) -> str:
    folder = str(invoice.subscription_id) if invoice.subscription_id else f"manual/{invoice.user_id}"
    suffix = "-void" if credit_note else ""
    return f"{invoice.tenant_id}/{folder}/{invoice.id}{suffix}.pdf"


def _path(key: str) -> Path:
    root = get_settings().billing_invoice_pdf_storage_path.resolve()
    path = (root / key).resolve()
    if root not in path.parents:
        raise ValueError("Invalid invoice PDF path")
    return path


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


async def _load(invoice_id: uuid.UUID) -> tuple[Invoice, list[InvoiceLine]]:
    async with db.transaction() as session:
        invoice = await InvoiceRepository(session).get(invoice_id)
        assert invoice is not None
        return invoice, await InvoiceLineRepository(session).of_invoice(invoice_id)


async def _stored_or_rendered(key: str, render, document: str) -> bytes:
    path = _path(key)
    if not get_settings().billing_skip_file_cache:
        content = await asyncio.to_thread(_read, path)
        if content:
            return content
    with calls.pdf_render(document):
        content = await asyncio.to_thread(render)
    try:
        await asyncio.to_thread(render_pool.store, path, content)
    except OSError as exc:  # a read-only or full disk must not cost the customer their download
        log.error("invoicing.pdf_store_failed", key=key, error=str(exc))
    return content


async def invoice_pdf(invoice_id: uuid.UUID) -> Pdf:
    """The invoice PDF of an issued invoice: from storage, or generated and stored (tenant bound)."""
    invoice, lines = await _load(invoice_id)
    key = invoice.pdf_storage_key or storage_key(invoice)
    content = await _stored_or_rendered(key, lambda: render_invoice_pdf(invoice_document(invoice, lines)),
                                        "invoice")
    return Pdf(f"{invoice.invoice_number}.pdf", content)


async def invoice_pdfs(invoices: list[Invoice], lines: list[InvoiceLine]) -> dict[uuid.UUID, Pdf | Exception]:
    """The PDFs of several issued invoices (the billing day's render batch; `lines`: all of theirs): read
    from storage (one thread hop), or rendered in the render pool and stored there (`render_pool`: not in
    this process, whose event loop would wait for the GIL; only the bytes come back, for the mail). An
    invoice whose PDF could not be made has the exception instead."""
    of_invoice: dict[uuid.UUID, list[InvoiceLine]] = defaultdict(list)
    for line in lines:
        of_invoice[line.invoice_id].append(line)
    results: dict[uuid.UUID, Pdf | Exception] = {}
    paths: dict[uuid.UUID, Path] = {}
    for invoice in invoices:
        try:
            paths[invoice.id] = _path(invoice.pdf_storage_key or storage_key(invoice))
        except ValueError as exc:
            results[invoice.id] = exc
    stored = ({} if get_settings().billing_skip_file_cache
              else await asyncio.to_thread(lambda: {id_: _read(path) for id_, path in paths.items()}))

    async def rendered(invoice: Invoice) -> tuple[bytes, str | None]:
        document = invoice_document(invoice, of_invoice[invoice.id])
        with calls.pdf_render("invoice"):
            return await render_pool.render(render_invoice_pdf, document, paths[invoice.id])

    missing = [invoice for invoice in invoices if invoice.id in paths and not stored.get(invoice.id)]
    made = await asyncio.gather(*(rendered(invoice) for invoice in missing), return_exceptions=True)
    unstored = [result[1] for result in made if isinstance(result, tuple) and result[1] is not None]
    if unstored:  # a read-only or full disk: the PDFs still go out with their mails
        log.error("invoicing.pdf_store_failed", count=len(unstored), error=unstored[0])
    for invoice, result in zip(missing, made):
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result  # cancelled, not a failure of this invoice
        if isinstance(result, Exception):
            results[invoice.id] = result
        else:
            stored[invoice.id] = result[0]
    for invoice in invoices:
        content = stored.get(invoice.id)
        if content:
            results[invoice.id] = Pdf(f"{invoice.invoice_number}.pdf", content)
    return results


async def credit_note_pdf(invoice_id: uuid.UUID) -> Pdf:
    """The credit note of a void invoice: from storage, or generated and stored (tenant bound)."""
    invoice, lines = await _load(invoice_id)
    key = invoice.credit_note_storage_key or storage_key(invoice, credit_note=True)
    content = await _stored_or_rendered(key, lambda: render_void_pdf(void_document(invoice, lines)),
                                        "credit_note")
    return Pdf(f"{invoice.credit_note_number}.pdf", content)


async def downloadable_pdf(invoice: Invoice, *, credit_note: bool = False) -> Pdf:
    """What a download route answers for `invoice` (customer and admin routes alike): the invoice PDF
    (400 for a draft) or, with `credit_note`, the credit note (400 unless the invoice is void)."""
    if credit_note:
        if invoice.status != InvoiceStatus.VOID or not invoice.invoice_number:
            raise NotVoid()
        return await credit_note_pdf(invoice.id)
    if invoice.status == InvoiceStatus.DRAFT or not invoice.invoice_number:
        raise DraftHasNoPdf()
    return await invoice_pdf(invoice.id)
