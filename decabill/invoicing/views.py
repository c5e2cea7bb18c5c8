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

import datetime as dt
import uuid
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


@dataclass
class InvoiceView:
    invoice: Invoice
    subscription_number: str | None = None
    line_items: list[InvoiceLine] = field(default_factory=list)

    # -- plain fields --
    @property
    def id(self) -> uuid.UUID:
        return self.invoice.id

    @property
    def invoice_ref_id(self) -> uuid.UUID:
        return self.invoice.id

    @property
    def subscription_id(self) -> uuid.UUID | None:
        return self.invoice.subscription_id

    @property
    def user_id(self) -> uuid.UUID:
        return self.invoice.user_id

    @property
    def invoice_number(self) -> str | None:
        return self.invoice.invoice_number

    @property
    def status(self) -> str:
        return self.invoice.status

    @property
    def currency(self) -> str:
        return self.invoice.currency

    @property
    def subtotal_net(self) -> Decimal:
        return self.invoice.subtotal_net

    @property
    def tax_total(self) -> Decimal:
        return self.invoice.tax_total

    @property
    def total_gross(self) -> Decimal:
        return self.invoice.total_gross

    @property
    def balance_due(self) -> Decimal:
        return self.invoice.balance_due

    @property
    def balance(self) -> Decimal:
        return self.invoice.balance_due

    @property
    def issued_at(self) -> dt.datetime | None:
        return self.invoice.issued_at

    @property
    def due_date(self) -> dt.date | None:
        return self.invoice.due_date

    @property
    def created_at(self) -> dt.datetime:
        return self.invoice.created_at

    # -- EU VAT, as determined at issue (the snapshot; nothing recomputes it) --
    @property
    def tax_rule(self) -> str | None:
        return self.invoice.tax_rule

    @property
    def tax_snapshot(self) -> dict | None:
        return self.invoice.tax_snapshot

    @property
    def buyer_vat_id(self) -> str | None:
        return (self.invoice.tax_snapshot or {}).get("buyerVatId")

    @property
    def dunning_level(self) -> int:
        return self.invoice.dunning_level or 0

    @property
    def dunning_action(self) -> str | None:
        return self.invoice.dunning_action

    @property
    def dunning_applied_at(self) -> dt.datetime | None:
        return self.invoice.dunning_applied_at

    # -- capability flags --
    @property
    def can_pay(self) -> bool:
        return self.invoice.status in InvoiceStatus.OPEN and self.invoice.balance_due > 0

    @property
    def can_download(self) -> bool:
        return self.invoice.status != InvoiceStatus.DRAFT

    @property
    def can_preview(self) -> bool:
        return self.can_download

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
