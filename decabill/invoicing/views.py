"""What the API shows of an invoice (behavior.md part B §3.5–§3.6): the contract's InvoiceResponse and
InvoiceDetailResponse read their properties from these views (handlers' `dump()`), so the capability
flags and derived numbers are computed in one place.

* `canPay` = issued, partially paid or overdue with a balance above 0; `canDownload` = `canPreview` = not a
  draft; `canDownloadVoidDocument` = void with a number; `voidDocumentNumber` = `<number>-CN` when void.
* The tax breakdown is built from the stored lines (the rates they were issued with, grouped per
  category, EN 16931 category and rate in first-appearance order) — the figures of the PDF and its XML.
* `taxRule` and `taxSnapshot` are what issuing stored (decabill/taxes); drafts have none yet.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from decimal import Decimal

from decabill.documents import round_cents
from models.invoicing import Invoice, InvoiceLine, InvoiceStatus


@dataclass(frozen=True)
class TaxBreakdownView:
    tax_category: str
    tax_rate: Decimal
    tax_amount: Decimal
    vat_category_code: str = "S"
    taxable_amount: Decimal = Decimal("0.00")


def _of_invoice(column: str) -> property:
    """A read-only view property that is the invoice's own value."""
    return property(operator.attrgetter(f"invoice.{column}"))


@dataclass
class InvoiceView:
    invoice: Invoice
    subscription_number: str | None = None
    line_items: list[InvoiceLine] = field(default_factory=list)

    # -- plain fields: read straight from the invoice (a C attribute getter: no Python call per value shaped) --
    id = _of_invoice("id")
    invoice_ref_id = _of_invoice("id")
    subscription_id = _of_invoice("subscription_id")
    user_id = _of_invoice("user_id")
    invoice_number = _of_invoice("invoice_number")
    status = _of_invoice("status")
    currency = _of_invoice("currency")
    subtotal_net = _of_invoice("subtotal_net")
    tax_total = _of_invoice("tax_total")
    total_gross = _of_invoice("total_gross")
    balance_due = _of_invoice("balance_due")
    balance = _of_invoice("balance_due")
    issued_at = _of_invoice("issued_at")
    due_date = _of_invoice("due_date")
    created_at = _of_invoice("created_at")

    # -- EU VAT, as determined at issue (the snapshot; nothing recomputes it) --
    tax_rule = _of_invoice("tax_rule")
    tax_snapshot = _of_invoice("tax_snapshot")

    @property
    def buyer_vat_id(self) -> str | None:
        return (self.invoice.tax_snapshot or {}).get("buyerVatId")

    @property
    def dunning_level(self) -> int:
        return self.invoice.dunning_level or 0

    dunning_action = _of_invoice("dunning_action")
    dunning_applied_at = _of_invoice("dunning_applied_at")

    # -- capability flags (the same rules in SQL for the lists PostgreSQL writes: `invoice_view_values` in
    #    decabill/invoicing/repository.py) --
    @property
    def can_pay(self) -> bool:
        return self.invoice.status in InvoiceStatus.OPEN and self.invoice.balance_due > 0

    @property
    def can_download(self) -> bool:
        return self.invoice.status != InvoiceStatus.DRAFT

    can_preview = can_download  # the same flag (one property: no second call per invoice shaped)

    @property
    def can_download_void_document(self) -> bool:
        return self.invoice.status == InvoiceStatus.VOID and bool(self.invoice.invoice_number)

    @property
    def void_document_number(self) -> str | None:
        return self.invoice.credit_note_number if self.can_download_void_document else None

    @property
    def tax_breakdown(self) -> list[TaxBreakdownView]:
        groups: dict[tuple[str, str, Decimal], tuple[Decimal, Decimal]] = {}
        for line in sorted(self.line_items, key=lambda line: line.position):
            key = (line.tax_category, line.vat_category_code, line.tax_rate)
            net, tax = groups.get(key, (Decimal(0), Decimal(0)))
            groups[key] = (net + line.line_net, tax + line.line_tax)
        return [TaxBreakdownView(category, rate, round_cents(tax), code, round_cents(net))
                for (category, code, rate), (net, tax) in groups.items()]


@dataclass(frozen=True)
class InvoicesSummaryView:
    open_overdue_count: int
    open_overdue_total: Decimal
    billing_day_of_month: int
    unbilled_total: Decimal
