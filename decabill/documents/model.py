"""Plain, immutable inputs for invoice and credit-note documents.

The documents package never reads the database or the environment: the caller
(the invoice service) maps its rows and the BILLING_ISSUER_* settings onto these
classes. All money is Decimal, already rounded to cents by the caller (see
money.compute_line / money.breakdown / money.totals for the rules).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Final

# EN 16931 VAT category codes (UNTDID 5305 subset allowed by BT-151/BT-118).
# A reduced rate is still category "S" with a different rate: the EN 16931 code
# list has no separate "reduced" code ("AA" is rejected by the schematron), and
# the breakdown is per (category, rate) anyway.
STANDARD_RATED: Final = "S"
ZERO_RATED: Final = "Z"
REVERSE_CHARGE: Final = "AE"  # intra-community B2B service, the buyer accounts for the VAT
NOT_SUBJECT: Final = "O"  # outside the scope of (EU) VAT
EXEMPT: Final = "E"
SUPPORTED_TAX_CATEGORIES: Final = frozenset({STANDARD_RATED, ZERO_RATED, REVERSE_CHARGE, NOT_SUBJECT, EXEMPT})

# Exemption reason code (BT-121, CEF VATEX list) and text (BT-120) that EN 16931 requires on the
# breakdown of each category but S and Z (BR-AE-10, BR-O-10, BR-E-10).
EXEMPTIONS: Final = {
    REVERSE_CHARGE: ("VATEX-EU-AE", "Reverse charge: VAT to be accounted for by the recipient "
                                    "(Article 196 Directive 2006/112/EC)"),
    NOT_SUBJECT: ("VATEX-EU-O", "Not subject to EU VAT: place of supply outside the EU "
                                "(Article 44 Directive 2006/112/EC)"),
    EXEMPT: ("VATEX-EU-132", "Exempt from VAT (Article 132 Directive 2006/112/EC)"),
}

# The service's own category names (billing_invoice_line_items.tax_category).
_CATEGORY_BY_SERVICE_NAME: Final = {
    "standard": STANDARD_RATED,
    "reduced": STANDARD_RATED,
}


class DocumentError(ValueError):
    """The inputs cannot produce a correct document (missing data, totals off)."""


def tax_category_code(service_category: str) -> str:
    """Map the service's 'standard'/'reduced' onto the EN 16931 category code."""
    try:
        return _CATEGORY_BY_SERVICE_NAME[service_category]
    except KeyError:
        raise ValueError(f"unknown tax category {service_category!r}") from None


@dataclass(frozen=True, kw_only=True)
class Party:
    """A seller or buyer as printed on the document and written to the XML."""

    name: str
    address_line1: str | None = None
    address_line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2, e.g. "DE"
    vat_id: str | None = None
    email: str | None = None


@dataclass(frozen=True, kw_only=True)
class Issuer(Party):
    """The seller, plus the bank account customers pay into."""

    bank: str | None = None
    iban: str | None = None
    bic: str | None = None


@dataclass(frozen=True, kw_only=True)
class InvoiceLine:
    description: str
    quantity: Decimal
    unit_price: Decimal  # net
    tax_category: str  # an EN 16931 code of SUPPORTED_TAX_CATEGORIES
    tax_rate: Decimal  # percent, e.g. Decimal("19")
    net_amount: Decimal
    tax_amount: Decimal
    gross_amount: Decimal


@dataclass(frozen=True, kw_only=True)
class TaxBreakdown:
    """One VAT breakdown row (EN 16931 BG-23) per category and rate."""

    category: str
    rate: Decimal
    taxable_amount: Decimal
    tax_amount: Decimal

    @property
    def exemption(self) -> tuple[str, str] | None:
        """(reason code, reason) of a category that needs them, else None."""
        return EXEMPTIONS.get(self.category)


def _as_tuple(instance: object, name: str) -> None:
    # Frozen dataclasses cannot be assigned normally; a tuple keeps the
    # document truly immutable even when the caller passed a list.
    value: Sequence[object] = getattr(instance, name)
    object.__setattr__(instance, name, tuple(value))


@dataclass(frozen=True, kw_only=True)
class InvoiceDocument:
    number: str
    issue_date: date
    currency: str  # ISO 4217, e.g. "EUR"
    issuer: Issuer
    customer: Party
    lines: Sequence[InvoiceLine]
    tax_breakdown: Sequence[TaxBreakdown]
    subtotal: Decimal  # net, sum of line nets
    tax_total: Decimal
    total: Decimal  # gross = subtotal + tax_total
    amount_paid: Decimal  # already received (partial payments)
    amount_due: Decimal  # total - amount_paid
    due_date: date | None = None
    payment_note: str | None = None  # free text printed with the bank details
    service_period_start: date | None = None
    service_period_end: date | None = None
    order_reference: str | None = None  # e.g. the subscription number
    note: str | None = None  # free text note on the document
    tax_rule: str | None = None  # the EU VAT rule, printed (domestic, reverse charge, ...)
    # when it was issued: the PDF's creation date (without it, the issue date at 00:00 UTC), so that two
    # renders of the same invoice are the same bytes
    issued_at: datetime | None = None

    def __post_init__(self) -> None:
        _as_tuple(self, "lines")
        _as_tuple(self, "tax_breakdown")


@dataclass(frozen=True, kw_only=True)
class VoidDocument:
    """The credit note issued when an invoice is voided: same lines and totals."""

    number: str  # "<invoice number>-CN"
    voided_invoice_number: str
    issue_date: date  # the void date
    reason: str
    currency: str
    issuer: Issuer
    customer: Party
    lines: Sequence[InvoiceLine]
    tax_breakdown: Sequence[TaxBreakdown]
    subtotal: Decimal
    tax_total: Decimal
    total: Decimal
    voided_invoice_date: date | None = None
    service_period_start: date | None = None
    service_period_end: date | None = None
    order_reference: str | None = None
    tax_rule: str | None = None
    issued_at: datetime | None = None  # when the credit note was issued (the void), as for invoices

    def __post_init__(self) -> None:
        _as_tuple(self, "lines")
        _as_tuple(self, "tax_breakdown")
