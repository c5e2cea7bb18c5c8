"""Money arithmetic for invoice documents: Decimal only, rounded half up to cents.

These are the same rules the invoice service applies when it stores line items
(part B §3.4 of the behaviour reference), so a caller can build document inputs
from stored rows or from scratch and get identical figures either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

from decabill.documents.model import (
    STANDARD_RATED,
    SUPPORTED_TAX_CATEGORIES,
    DocumentError,
    InvoiceDocument,
    InvoiceLine,
    TaxBreakdown,
    VoidDocument,
)

CENT = Decimal("0.01")
_HUNDRED = Decimal(100)


def round_cents(value: Decimal) -> Decimal:
    """Round to two decimals, halves away from zero (commercial rounding)."""
    if not isinstance(value, Decimal):
        # A float here would already carry binary rounding noise.
        raise TypeError(f"expected Decimal, got {type(value).__name__}")
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def plain(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation.

    Decimal("20.00").normalize() is 2E+1, which would leak into XML and PDF
    text as "2E+1"; integral values are therefore re-quantized to units.
    """
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def compute_line(
    quantity: Decimal, unit_price: Decimal, tax_rate: Decimal
) -> tuple[Decimal, Decimal, Decimal]:
    """Return (net, tax, gross) of one line, each rounded to cents.

    Tax is computed from the already rounded net so that net + tax = gross holds
    exactly on every printed line.
    """
    net = round_cents(quantity * unit_price)
    tax = round_cents(net * tax_rate / _HUNDRED)
    return net, tax, net + tax


def breakdown(lines: Iterable[InvoiceLine]) -> list[TaxBreakdown]:
    """One entry per (category, rate) in order of first appearance.

    The group's tax is the sum of the rounded line taxes (not the rounded tax of
    the group's net), so the breakdown always adds up to the sum of the lines.
    EN 16931 (BR-CO-17) tolerates the resulting difference of at most half a
    cent per line against "taxable amount x rate"; it checks within +/- 1.00.
    """
    groups: dict[tuple[str, Decimal], tuple[Decimal, Decimal]] = {}
    for line in lines:
        # Decimal hashes by value, so 19 and 19.0000 (as read back from a
        # decimal column) land in the same group; plain() tidies the display.
        key = (line.tax_category, plain(line.tax_rate))
        taxable, tax = groups.get(key, (Decimal("0.00"), Decimal("0.00")))
        groups[key] = (taxable + line.net_amount, tax + line.tax_amount)
    return [
        TaxBreakdown(
            category=category,
            rate=rate,
            taxable_amount=round_cents(taxable),
            tax_amount=round_cents(tax),
        )
        for (category, rate), (taxable, tax) in groups.items()
    ]


def make_line(
    description: str,
    quantity: Decimal,
    unit_price: Decimal,
    tax_rate: Decimal,
    tax_category: str = "S",
) -> InvoiceLine:
    """Build an InvoiceLine whose amounts follow compute_line()."""
    net, tax, gross = compute_line(quantity, unit_price, tax_rate)
    return InvoiceLine(
        description=description,
        quantity=quantity,
        unit_price=unit_price,
        tax_category=tax_category,
        tax_rate=tax_rate,
        net_amount=net,
        tax_amount=tax,
        gross_amount=gross,
    )


def totals(lines: Iterable[InvoiceLine]) -> tuple[Decimal, Decimal, Decimal]:
    """Return (subtotal net, tax total, total gross) of the given lines."""
    subtotal = Decimal("0.00")
    tax_total = Decimal("0.00")
    for line in lines:
        subtotal += line.net_amount
        tax_total += line.tax_amount
    subtotal, tax_total = round_cents(subtotal), round_cents(tax_total)
    return subtotal, tax_total, subtotal + tax_total


def check_amounts(doc: InvoiceDocument | VoidDocument) -> None:
    """Refuse documents whose figures do not add up.

    A mismatch here would produce an e-invoice that fails the EN 16931 rules
    (BR-CO-10 ... BR-CO-16, BR-S-08) and a PDF that contradicts itself, so it is
    a caller bug worth stopping loudly rather than rendering.
    """
    if not doc.lines:
        raise DocumentError(f"{doc.number}: a document needs at least one line")
    for position, line in enumerate(doc.lines, start=1):
        _check_line(position, line)
    subtotal, tax_total, total = totals(doc.lines)
    _expect(doc.number, "subtotal", doc.subtotal, subtotal)
    _expect(doc.number, "tax_total", doc.tax_total, tax_total)
    _expect(doc.number, "total", doc.total, total)
    if _by_group(doc.tax_breakdown) != _by_group(breakdown(doc.lines)):
        raise DocumentError(
            f"{doc.number}: tax_breakdown does not match the lines; "
            "build it with money.breakdown(lines)"
        )
    if isinstance(doc, InvoiceDocument):
        _expect(doc.number, "amount_due", doc.amount_due, doc.total - doc.amount_paid)


def _check_line(position: int, line: InvoiceLine) -> None:
    if not line.description.strip():
        raise DocumentError(f"line {position}: the description is empty")  # BR-25
    if line.tax_category not in SUPPORTED_TAX_CATEGORIES:
        raise DocumentError(
            f"line {position}: tax category {line.tax_category!r} is not supported"
        )
    # EN 16931: standard rated needs a rate > 0 (BR-S-05), zero rated 0 % (BR-Z-05).
    if (line.tax_category == STANDARD_RATED) != (line.tax_rate > 0):
        raise DocumentError(
            f"line {position}: rate {line.tax_rate} does not fit "
            f"category {line.tax_category}"
        )
    for name in ("net_amount", "tax_amount", "gross_amount"):
        amount: Decimal = getattr(line, name)
        if amount != round_cents(amount):
            raise DocumentError(
                f"line {position}: {name} {amount} is not rounded to cents"
            )
    if line.net_amount + line.tax_amount != line.gross_amount:
        raise DocumentError(f"line {position}: net + tax != gross")


def _expect(number: str, name: str, given: Decimal, computed: Decimal) -> None:
    if given != computed:
        raise DocumentError(f"{number}: {name} is {given}, the lines give {computed}")


def _by_group(
    rows: Iterable[TaxBreakdown],
) -> dict[tuple[str, Decimal], tuple[Decimal, Decimal]]:
    return {(r.category, r.rate): (r.taxable_amount, r.tax_amount) for r in rows}
