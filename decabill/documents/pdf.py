"""A4 invoice and credit-note PDFs with the EN 16931 XML embedded (Factur-X, PDF/A-3B).

fpdf2 draws the human-readable page and, in the same pass, attaches the CII XML
as `factur-x.xml` (a PDF/A-3 associated file) and writes the PDF/A-3 + Factur-X
XMP metadata — the structure the factur-x library gives a finished PDF, without
parsing and writing the PDF a second time. For PDF/A the fonts must be embedded
(a TrueType font, not the PDF core fonts) and the file needs an sRGB output
intent; fpdf2 ships the sRGB ICC profile it uses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Final
from xml.sax.saxutils import escape

import pycountry
from fpdf import FPDF, FPDF_VERSION
from fpdf.annotations import FileSpec
from fpdf.enums import AssociatedFileRelationship, MethodReturnValue, OutputIntentSubType, PageMode, XPos, YPos
from fpdf.output import PDFICCProfile
from fpdf.syntax import PDFDate, create_dictionary_string, iobj_ref
from fpdf.util import builtin_srgb2014_bytes

from decabill.documents.einvoice import build_cii_xml, build_credit_note_xml
from decabill.documents.fonts import FONT_FAMILY, FontFiles, OutputProducer, add_fonts, default_fonts
from decabill.documents.model import (
    InvoiceDocument,
    InvoiceLine,
    Issuer,
    Party,
    TaxBreakdown,
    VoidDocument,
)
from decabill.documents.money import plain

# --- page geometry and style ----------------------------------------------------------

_MARGIN: Final = 15.0  # mm
_PAGE_WIDTH: Final = 210.0  # A4
_CONTENT_WIDTH: Final = _PAGE_WIDTH - 2 * _MARGIN
_RIGHT_COLUMN_X: Final = 112.0
_TEXT: Final = (33, 37, 41)
_MUTED: Final = (108, 117, 125)
_ACCENT: Final = (31, 78, 121)
_ZEBRA: Final = (243, 246, 249)
_RULE: Final = (200, 206, 212)


@dataclass(frozen=True)
class _Sheet:
    """What differs between an invoice page and a credit-note page."""

    title: str
    number: str
    issuer: Issuer
    customer: Party
    currency: str
    meta: Sequence[tuple[str, str]]
    lines: Sequence[InvoiceLine]
    tax_breakdown: Sequence[TaxBreakdown]
    totals: Sequence[tuple[str, Decimal, bool]]  # label, amount, emphasised
    remarks: Sequence[str] = field(default_factory=tuple)
    payment: Sequence[tuple[str, str]] = field(default_factory=tuple)


# --- public API -----------------------------------------------------------------


def render_invoice_pdf(
    doc: InvoiceDocument, *, fonts: FontFiles | None = None
) -> bytes:
    """Return the invoice as PDF/A-3B bytes with `factur-x.xml` (EN 16931) embedded."""
    xml = build_cii_xml(doc)  # first: refuses inconsistent input before drawing
    return _draw(_invoice_sheet(doc), fonts or default_fonts(),
                 _facturx(xml, doc.issuer, f"Invoice {doc.number}", doc.issue_date, doc.issued_at))


def render_void_pdf(doc: VoidDocument, *, fonts: FontFiles | None = None) -> bytes:
    """Return the credit note voiding an invoice, with its type-381 XML embedded."""
    xml = build_credit_note_xml(doc)
    return _draw(_void_sheet(doc), fonts or default_fonts(),
                 _facturx(xml, doc.issuer, f"Credit note {doc.number}", doc.issue_date, doc.issued_at))


# --- sheet contents -------------------------------------------------------------


def _invoice_sheet(doc: InvoiceDocument) -> _Sheet:
    meta = [("Invoice number", doc.number), ("Issue date", doc.issue_date.isoformat())]
    if doc.due_date:
        meta.append(("Due date", doc.due_date.isoformat()))
    if doc.tax_rule:
        meta.append(("Tax rule", doc.tax_rule))
    meta += _common_meta(
        doc.service_period_start, doc.service_period_end, doc.order_reference
    )
    totals: list[tuple[str, Decimal, bool]] = [
        ("Subtotal (net)", doc.subtotal, False),
        ("Tax total", doc.tax_total, False),
        ("Total", doc.total, True),
    ]
    if doc.amount_paid:
        totals.append(("Amount paid", doc.amount_paid, False))
    totals.append(("Balance due", doc.amount_due, True))
    return _Sheet(
        title="Invoice",
        number=doc.number,
        issuer=doc.issuer,
        customer=doc.customer,
        currency=doc.currency,
        meta=meta,
        lines=doc.lines,
        tax_breakdown=doc.tax_breakdown,
        totals=totals,
        remarks=[doc.note] if doc.note else [],
        payment=_payment_rows(doc),
    )


def _void_sheet(doc: VoidDocument) -> _Sheet:
    meta = [
        ("Credit note number", doc.number),
        ("Issue date", doc.issue_date.isoformat()),
        ("Original invoice", doc.voided_invoice_number),
    ]
    if doc.voided_invoice_date:
        meta.append(("Original invoice date", doc.voided_invoice_date.isoformat()))
    if doc.tax_rule:
        meta.append(("Tax rule", doc.tax_rule))
    meta += _common_meta(
        doc.service_period_start, doc.service_period_end, doc.order_reference
    )
    return _Sheet(
        title="Credit note",
        number=doc.number,
        issuer=doc.issuer,
        customer=doc.customer,
        currency=doc.currency,
        meta=meta,
        lines=doc.lines,
        tax_breakdown=doc.tax_breakdown,
        totals=[
            ("Subtotal (net)", doc.subtotal, False),
            ("Tax total", doc.tax_total, False),
            ("Total credited", doc.total, True),
        ],
        remarks=[
            f"This credit note voids invoice {doc.voided_invoice_number} in full.",
            f"Reason: {doc.reason}",
        ],
    )


def _common_meta(
    start: date | None, end: date | None, order_reference: str | None
) -> list[tuple[str, str]]:
    rows = []
    if start or end:
        # An en dash is the typographic range sign; DejaVu has the glyph.
        rows.append(("Service period", f"{_iso(start)} – {_iso(end)}"))  # noqa: RUF001
    if order_reference:
        rows.append(("Reference", order_reference))
    return rows


def _payment_rows(doc: InvoiceDocument) -> list[tuple[str, str]]:
    issuer = doc.issuer
    if doc.amount_due <= 0:
        return [("Status", "Paid in full. Thank you.")]
    rows = [("Amount due", _money(doc.amount_due, doc.currency))]
    if doc.due_date:
        rows.append(("Due date", doc.due_date.isoformat()))
    if issuer.bank:
        rows.append(("Bank", issuer.bank))
    if issuer.iban:
        rows.append(("IBAN", _group_iban(issuer.iban)))
    if issuer.bic:
        rows.append(("BIC", issuer.bic.strip().upper()))
    if issuer.iban:
        rows.append(("Account holder", issuer.name))
    rows.append(("Payment reference", doc.number))
    if doc.payment_note:
        rows.append(("Note", doc.payment_note))
    return rows


# --- drawing --------------------------------------------------------------------


class _Page(FPDF):
    """FPDF with the document footer; PDF/A-3B rules enforced while drawing."""

    def __init__(self, footer_text: str) -> None:
        # enforce_compliance makes fpdf2 refuse non-embedded fonts and other
        # PDF/A violations at drawing time instead of producing a broken file.
        super().__init__(
            orientation="portrait", unit="mm", format="A4", enforce_compliance="PDFA_3B"
        )
        self._footer_text = footer_text

    def footer(self) -> None:
        self.set_y(-14)
        self.set_draw_color(*_MUTED)
        self.set_line_width(0.1)
        self.line(_MARGIN, self.get_y(), _PAGE_WIDTH - _MARGIN, self.get_y())
        self.set_y(-12)
        self.set_font(FONT_FAMILY, "", 7)
        self.set_text_color(*_MUTED)
        # where cell() would put it (see _cell; below the page break trigger, where _cell calls cell())
        self.text(_MARGIN + self.c_margin, self.get_y() + 0.5 * 4 + 0.3 * self.font_size, self._footer_text)
        self.set_x(_MARGIN + _CONTENT_WIDTH * 0.8)
        self.cell(_CONTENT_WIDTH * 0.2, 4, f"Page {self.page_no()}/{{nb}}", align="R")


def _draw(sheet: _Sheet, fonts: FontFiles, facturx: _FacturX) -> bytes:
    pdf = _Page(_footer_text(sheet.issuer))
    _attach(pdf, facturx)
    add_fonts(pdf, fonts, _all_text(sheet))
    pdf.add_output_intent(
        OutputIntentSubType.PDFA,
        output_condition_identifier="sRGB",
        output_condition="IEC 61966-2-1:1999",
        registry_name="http://www.color.org",
        dest_output_profile=PDFICCProfile(
            contents=builtin_srgb2014_bytes(), n=3, alternate="DeviceRGB"
        ),
        info="sRGB IEC61966-2.1",
    )
    pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()
    _letterhead(pdf, sheet)
    _addresses_and_meta(pdf, sheet)
    _line_table(pdf, sheet)
    _breakdown_and_totals(pdf, sheet)
    _remarks(pdf, sheet.remarks)
    _payment_box(pdf, sheet.payment)
    return bytes(pdf.output(output_producer_class=OutputProducer))


def _all_text(sheet: _Sheet) -> str:
    """Every character the sheet may print (a superset: field reprs include the field names)."""
    return "".join((repr(sheet), _footer_text(sheet.issuer), *_address_lines(sheet.issuer),
                    *_address_lines(sheet.customer)))


def _letterhead(pdf: FPDF, sheet: _Sheet) -> None:
    issuer = sheet.issuer
    pdf.set_xy(_MARGIN, _MARGIN)
    _font(pdf, 24, bold=True, color=_ACCENT)
    _cell(pdf, _CONTENT_WIDTH, 10, sheet.title, align="R")
    pdf.set_xy(_MARGIN, _MARGIN)
    _font(pdf, 14, bold=True)
    _paragraph(pdf, _RIGHT_COLUMN_X - _MARGIN - 5, 7, issuer.name)
    _font(pdf, 8.5, color=_MUTED)
    details = _address_lines(issuer)
    if issuer.vat_id:
        details.append(f"VAT ID: {issuer.vat_id}")
    if issuer.email:
        details.append(issuer.email)
    for text in details:
        _cell(pdf, _RIGHT_COLUMN_X - _MARGIN - 5, 4, text, next_line=True)
    y = max(pdf.get_y(), _MARGIN + 12) + 4
    pdf.set_draw_color(*_ACCENT)
    pdf.set_line_width(0.6)
    pdf.line(_MARGIN, y, _PAGE_WIDTH - _MARGIN, y)
    pdf.set_y(y + 6)


def _addresses_and_meta(pdf: FPDF, sheet: _Sheet) -> None:
    top = pdf.get_y()
    _label(pdf, "Bill to", _MARGIN, top)
    _font(pdf, 10.5, bold=True)
    pdf.set_x(_MARGIN)
    _paragraph(pdf, _RIGHT_COLUMN_X - _MARGIN - 8, 5.5, sheet.customer.name)
    _font(pdf, 9.5)
    lines = _address_lines(sheet.customer)
    if sheet.customer.vat_id:
        lines.append(f"VAT ID: {sheet.customer.vat_id}")
    if sheet.customer.email:
        lines.append(sheet.customer.email)
    for text in lines:
        pdf.set_x(_MARGIN)
        _paragraph(pdf, _RIGHT_COLUMN_X - _MARGIN - 8, 5, text)
    left_bottom = pdf.get_y()

    label_width = 38.0
    value_width = _PAGE_WIDTH - _MARGIN - _RIGHT_COLUMN_X - label_width
    pdf.set_xy(_RIGHT_COLUMN_X, top)
    for label, value in sheet.meta:
        pdf.set_x(_RIGHT_COLUMN_X)
        _font(pdf, 9, color=_MUTED)
        _cell(pdf, label_width, 5.5, label)
        _font(pdf, 9, bold=label.endswith("number"))
        _paragraph(pdf, value_width, 5.5, value, align="R")
    pdf.set_y(max(left_bottom, pdf.get_y()) + 8)


def _line_table(pdf: FPDF, sheet: _Sheet) -> None:
    currency = sheet.currency
    rows = [
        (str(position), line.description, _quantity(line.quantity), _price(line.unit_price),
         _percent(line.tax_rate), _amount(line.net_amount))
        for position, line in enumerate(sheet.lines, start=1)
    ]
    _font(pdf, 8.5)
    _thin_rules(pdf)
    _table(
        pdf,
        _LINE_COLUMNS,
        ("#", "Description", "Qty", f"Unit price ({currency})", "Tax", f"Net ({currency})"),
        rows,
        _TableStyle(line_height=5, padding=(1.2, 1.5), heading_fill=_ACCENT, heading_color=(255, 255, 255),
                    zebra=_ZEBRA),
    )
    pdf.ln(6)


@dataclass(frozen=True)
class _Column:
    width: float
    right: bool = False  # right-aligned (figures)


_LINE_COLUMNS: Final = (_Column(8, right=True), _Column(80), _Column(16, right=True), _Column(31, right=True),
                        _Column(15, right=True), _Column(30, right=True))
_BREAKDOWN_COLUMNS: Final = (_Column(12), _Column(14), _Column(32, right=True), _Column(30, right=True))


@dataclass(frozen=True)
class _TableStyle:
    line_height: float
    padding: tuple[float, float]  # vertical, horizontal (mm)
    heading_color: tuple[int, int, int] = _TEXT
    heading_fill: tuple[int, int, int] | None = None
    zebra: tuple[int, int, int] | None = None  # fill of every second row


def _table(
    pdf: FPDF,
    columns: Sequence[_Column],
    heading: Sequence[str],
    rows: Sequence[Sequence[str]],
    style: _TableStyle,
) -> None:
    """A table with a heading row (repeated after a page break), rules between the rows and text that
    wraps within its column, at the current position with the current font size.

    Drawn with `FPDF.text()` at computed positions rather than with fpdf2's `table()`: its cell layout
    (a `multi_cell` dry run and a `multi_cell` per cell) was a third of the render time of an invoice."""
    _draw_table_row(pdf, columns, heading, style, bold=True, color=style.heading_color,
                    fill=style.heading_fill)
    for index, row in enumerate(rows, start=1):
        _draw_table_row(pdf, columns, row, style, fill=style.zebra if index % 2 == 0 else None,
                        heading=(heading, style))


def _draw_table_row(
    pdf: FPDF,
    columns: Sequence[_Column],
    texts: Sequence[str],
    style: _TableStyle,
    *,
    bold: bool = False,
    color: tuple[int, int, int] = _TEXT,
    fill: tuple[int, int, int] | None = None,
    heading: tuple[Sequence[str], _TableStyle] | None = None,
) -> None:
    pad_y, pad_x = style.padding
    _font(pdf, pdf.font_size_pt, bold=bold, color=color)
    cells = [_wrap(pdf, text, column.width - 2 * pad_x) for column, text in zip(columns, texts, strict=True)]
    height = max(len(lines) for lines in cells) * style.line_height + 2 * pad_y
    if heading and pdf.get_y() + height > pdf.page_break_trigger:
        pdf.add_page()
        _draw_table_row(pdf, columns, heading[0], style, bold=True, color=style.heading_color,
                        fill=style.heading_fill)
        _font(pdf, pdf.font_size_pt, bold=bold, color=color)
    top, x = pdf.get_y(), pdf.l_margin
    width = sum(column.width for column in columns)
    if fill:
        pdf.set_fill_color(*fill)
        pdf.rect(x, top, width, height, style="F")
    # the baseline of a line of text as fpdf2's cell() puts it: centred in its line height
    baseline = top + pad_y + 0.5 * style.line_height + 0.3 * pdf.font_size
    for column, lines in zip(columns, cells, strict=True):
        for number, text in enumerate(lines):
            offset = column.width - pad_x - _width(pdf, text) if column.right else pad_x
            pdf.text(x + offset, baseline + number * style.line_height, text)
        x += column.width
    pdf.line(pdf.l_margin, top + height, pdf.l_margin + width, top + height)
    pdf.set_y(top + height)


def _width(pdf: FPDF, text: str) -> float:
    """`pdf.get_string_width(text)` for our plain text (no markdown, shaping or character spacing): the
    font's advance widths summed, without fpdf2 splitting the text into styled fragments first."""
    return pdf.current_font.get_text_width(text, pdf.font_size_pt, None)[1] / pdf.k


def _wrap(pdf: FPDF, text: str, width: float) -> list[str]:
    """`text` broken into the lines that fit `width` (mm) in the current font."""
    if _width(pdf, text) <= width:
        return [text]
    # fpdf2's line breaking is slow and the texts that wrap are mostly the same in every document (column
    # headings such as "Net amount (EUR)"): memoised per font (its widths table, parsed once per process
    # and kept, so its id is stable), size, text and width
    key = (id(pdf.current_font.cw), pdf.font_size_pt, text, width)
    lines = _wrapped.get(key)
    if lines is None:
        if len(_wrapped) >= _WRAPPED_KEPT:
            _wrapped.clear()
        lines = _wrapped[key] = tuple(pdf.multi_cell(width + 2 * pdf.c_margin, 1, text, dry_run=True,
                                                     output=MethodReturnValue.LINES))
    return list(lines)


_wrapped: dict[tuple[int, float, str, float], tuple[str, ...]] = {}
_WRAPPED_KEPT: Final = 4096


def _breakdown_and_totals(pdf: FPDF, sheet: _Sheet) -> None:
    rows = len(sheet.tax_breakdown) + 1
    needed = max(rows * 6 + 8, len(sheet.totals) * 6.5) + 4
    if pdf.get_y() + needed > pdf.page_break_trigger:
        pdf.add_page()
    top = pdf.get_y()
    _tax_breakdown_table(pdf, sheet)
    left_bottom = pdf.get_y()
    pdf.set_y(top)
    _totals(pdf, sheet)
    pdf.set_y(max(left_bottom, pdf.get_y()) + 6)


def _tax_breakdown_table(pdf: FPDF, sheet: _Sheet) -> None:
    _label(pdf, "Tax breakdown", _MARGIN, pdf.get_y())
    _font(pdf, 8.5)
    _thin_rules(pdf)
    rows = [
        # the EN 16931 category (S, AE, O, ...), as in the XML
        (group.category, _percent(group.rate), _amount(group.taxable_amount), _amount(group.tax_amount))
        for group in sheet.tax_breakdown
    ]
    _table(
        pdf,
        _BREAKDOWN_COLUMNS,
        ("VAT", "Rate", f"Net amount ({sheet.currency})", f"Tax ({sheet.currency})"),
        rows,
        _TableStyle(line_height=4.8, padding=(1, 1.5)),
    )


def _totals(pdf: FPDF, sheet: _Sheet) -> None:
    label_width, value_width = 42.0, 38.0
    x = _PAGE_WIDTH - _MARGIN - label_width - value_width
    for label, amount, emphasised in sheet.totals:
        pdf.set_x(x)
        if emphasised:
            pdf.set_draw_color(*_MUTED)
            pdf.set_line_width(0.2)
            pdf.line(x, pdf.get_y(), _PAGE_WIDTH - _MARGIN, pdf.get_y())
        _font(
            pdf,
            10 if emphasised else 9,
            bold=emphasised,
            color=_TEXT if emphasised else _MUTED,
        )
        _cell(pdf, label_width, 6.5, label)
        _font(pdf, 10 if emphasised else 9, bold=emphasised)
        _cell(pdf, value_width, 6.5, _money(amount, sheet.currency), align="R", next_line=True)


def _remarks(pdf: FPDF, remarks: Sequence[str]) -> None:
    if not remarks:
        return
    _font(pdf, 9)
    for text in remarks:
        _paragraph(pdf, _CONTENT_WIDTH, 5, text)
    pdf.ln(4)


def _payment_box(pdf: FPDF, rows: Sequence[tuple[str, str]]) -> None:
    if not rows:
        return
    needed = len(rows) * 5.5 + 12
    if pdf.get_y() + needed > pdf.page_break_trigger:
        pdf.add_page()
    top = pdf.get_y()
    pdf.set_fill_color(*_ZEBRA)
    pdf.rect(_MARGIN, top, _CONTENT_WIDTH, needed - 2, style="F")
    _label(pdf, "Payment details", _MARGIN + 4, top + 3)
    for label, value in rows:
        pdf.set_x(_MARGIN + 4)
        _font(pdf, 9, color=_MUTED)
        _cell(pdf, 38, 5.5, label)
        _font(pdf, 9, bold=label in ("Amount due", "IBAN"))
        _paragraph(pdf, _CONTENT_WIDTH - 46, 5.5, value)
    pdf.set_y(max(pdf.get_y(), top + needed))


def _paragraph(pdf: FPDF, width: float, line_height: float, text: str, *, align: str = "J") -> None:
    """`multi_cell(width, line_height, text)`, then to the left margin of the next line. Text that fits
    on one line (nearly all of it) goes to `cell`, the same output: fpdf2's line breaking measures the
    text again for every character added, and was a fifth of a render. (A last line is not justified.)"""
    if "\n" not in text and _width(pdf, text) <= width - 2 * pdf.c_margin:
        _cell(pdf, width, line_height, text, align="R" if align == "R" else "L", next_line=True)
    else:
        pdf.multi_cell(width, line_height, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _cell(pdf: FPDF, width: float, height: float, text: str, *, align: str = "L", next_line: bool = False) -> None:
    """`pdf.cell(width, height, text, align=align)` (then to the left margin of the next line if
    `next_line`) for one line of plain text: drawn with `text()` where `cell` puts it — `c_margin` in
    from the left or right edge, the baseline 0.3 font sizes below the cell's middle. `cell` lays the text
    out as styled fragments first (markdown, shaping, spacing), which we do not use: it was a fifth of a
    render. Near the bottom of the page it is `cell` itself, which breaks the page."""
    x, y = pdf.get_x(), pdf.get_y()
    if y + height > pdf.page_break_trigger:
        pdf.cell(width, height, text, align=align, new_x=XPos.LMARGIN if next_line else XPos.RIGHT,
                 new_y=YPos.NEXT if next_line else YPos.TOP)
        return
    if text:
        offset = width - pdf.c_margin - _width(pdf, text) if align == "R" else pdf.c_margin
        pdf.text(x + offset, y + 0.5 * height + 0.3 * pdf.font_size, text)
    if next_line:
        pdf.set_xy(pdf.l_margin, y + height)
    else:
        pdf.set_x(x + width)


def _thin_rules(pdf: FPDF) -> None:
    # fpdf2 tables draw their borders with the current line settings, which
    # the letterhead left thick and dark.
    pdf.set_draw_color(*_RULE)
    pdf.set_line_width(0.2)


def _label(pdf: FPDF, text: str, x: float, y: float) -> None:
    pdf.set_xy(x, y)
    _font(pdf, 7.5, bold=True, color=_MUTED)
    _cell(pdf, 80, 5, text.upper(), next_line=True)


def _font(
    pdf: FPDF, size: float, *, bold: bool = False, color: tuple[int, int, int] = _TEXT
) -> None:
    pdf.set_font(FONT_FAMILY, "B" if bold else "", size)
    pdf.set_text_color(*color)


# --- text formatting -----------------------------------------------------------


def _address_lines(party: Party) -> list[str]:
    lines = [text for text in (party.address_line1, party.address_line2) if text]
    place = " ".join(text for text in (party.postal_code, party.city) if text)
    if place:
        lines.append(place)
    if party.country:
        lines.append(_country_name(party.country))
    return lines


def _country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code.strip().upper())
    return country.name if country else code


def _footer_text(issuer: Issuer) -> str:
    parts = [issuer.name]
    if issuer.vat_id:
        parts.append(f"VAT ID {issuer.vat_id}")
    if issuer.iban:
        parts.append(f"IBAN {_group_iban(issuer.iban)}")
    if issuer.bic:
        parts.append(f"BIC {issuer.bic.strip().upper()}")
    return " · ".join(parts)


def _group_iban(iban: str) -> str:
    compact = "".join(iban.split()).upper()
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _amount(value: Decimal) -> str:
    return f"{value:,.2f}"


def _money(value: Decimal, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def _price(value: Decimal) -> str:
    # Unit prices may carry up to four decimals (decimal(12,4) in storage);
    # show them when present, otherwise the usual two.
    tidy = plain(value.quantize(Decimal("0.0001")))
    exponent = tidy.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return f"{tidy:,f}"
    return f"{value:,.2f}"


def _quantity(value: Decimal) -> str:
    return f"{plain(value.quantize(Decimal('0.0001'))):,f}"


def _percent(value: Decimal) -> str:
    return f"{plain(value):f} %"


def _iso(day: date | None) -> str:
    return day.isoformat() if day else "…"


# --- Factur-X embedding ---------------------------------------------------------


# The Factur-X 1.0 XMP extension schema (Factur-X specification, "PDF/A-3 extension schema"): PDF/A
# requires every non-standard XMP property to be declared, and Factur-X readers look for these four.
_FACTURX_NS: Final = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"
_FACTURX_PROPERTIES: Final = (
    ("DocumentFileName", "The name of the embedded XML document"),
    ("DocumentType", "The type of the hybrid document in capital letters, e.g. INVOICE or ORDER"),
    ("Version", "The actual version of the standard applying to the embedded XML document"),
    ("ConformanceLevel", "The conformance level of the embedded XML document"),
)
_FACTURX_FILENAME: Final = "factur-x.xml"
_FACTURX_LEVEL: Final = "EN 16931"
_KEYWORDS: Final = "Factur-X, EN 16931, Invoice"
_CREATOR: Final = "Decabill"
_PRODUCER: Final = f"fpdf2 {FPDF_VERSION}"


@dataclass(frozen=True)
class _FacturX:
    """The XML to embed and the document information written to the XMP."""

    xml: bytes
    title: str
    author: str
    subject: str
    created: datetime  # creation and modification date: fixed by the document, not the time of rendering


def _facturx(xml: bytes, issuer: Issuer, title: str, issued: date, issued_at: datetime | None) -> _FacturX:
    created = issued_at or datetime.combine(issued, time(), UTC)
    created = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
    return _FacturX(xml=xml, title=f"{issuer.name}: {title}", author=issuer.name,
                    subject=f"{title} dated {issued.isoformat()} issued by {issuer.name}",
                    created=created.replace(microsecond=0))


def _attach(pdf: FPDF, facturx: _FacturX) -> None:
    """Embed `factur-x.xml` as the PDF/A-3 associated file of the document (catalog /AF, the
    EmbeddedFiles name tree, AFRelationship /Data: the XML holds the same data as the page) and write
    the XMP metadata: pdfaid part 3, the document information and the Factur-X extension schema.

    fpdf2 writes no Info dictionary for a PDF/A document (optional in PDF/A-3; the XMP is the metadata).
    The dates are the document's own (`_FacturX.created`), and fpdf2 derives the file /ID from the
    content and the creation date: the same invoice renders to the same bytes."""
    pdf.set_creation_date(facturx.created)
    pdf.set_lang("en-US")
    pdf.page_mode = PageMode.USE_ATTACHMENTS  # viewers show the attachment panel, as factur-x sets it
    embedded = pdf.embed_file(bytes=facturx.xml, basename=_FACTURX_FILENAME, mime_type="text/xml",
                              modification_date=facturx.created, compress=True)
    # fpdf2's checksum=True hashes the compressed stream; the /CheckSum of an embedded file is the MD5
    # of the file itself
    embedded.params = create_dictionary_string({
        "/Size": len(facturx.xml),
        "/ModDate": PDFDate(facturx.created, with_tz=True).serialize(),
        "/CheckSum": f"<{hashlib.md5(facturx.xml, usedforsecurity=False).hexdigest()}>",
    })
    # set before fpdf2 makes its own file specification at output(), which has no /UF in /EF
    embedded._file_spec = _FileSpec(embedded, _FACTURX_FILENAME, "Factur-X XML file",
                                    AssociatedFileRelationship.DATA)
    pdf.set_xmp_metadata(_xmp(facturx))


class _FileSpec(FileSpec):
    """fpdf2's file specification with the embedded stream under /UF (the Unicode file name) as well as
    /F, as factur-x writes it."""

    @property
    def e_f(self) -> str:
        ref = iobj_ref(self._embedded_file.id)
        return create_dictionary_string({"/F": ref, "/UF": ref})


def _xmp(facturx: _FacturX) -> str:
    """The XMP packet body (fpdf2 adds the xpacket wrapper). Each entry of the Info dictionary has its
    XMP counterpart with the same value, as PDF/A requires."""
    stamp = facturx.created.isoformat(timespec="seconds")
    properties = "".join(
        f"""
              <rdf:li rdf:parseType="Resource">
                <pdfaProperty:name>{name}</pdfaProperty:name>
                <pdfaProperty:valueType>Text</pdfaProperty:valueType>
                <pdfaProperty:category>external</pdfaProperty:category>
                <pdfaProperty:description>{description}</pdfaProperty:description>
              </rdf:li>"""
        for name, description in _FACTURX_PROPERTIES)
    return f"""<x:xmpmeta xmlns:x="adobe:ns:meta/">
  <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
    <rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/">
      <pdfaid:part>3</pdfaid:part>
      <pdfaid:conformance>B</pdfaid:conformance>
    </rdf:Description>
    <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">
      <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{escape(facturx.title)}</rdf:li></rdf:Alt></dc:title>
      <dc:creator><rdf:Seq><rdf:li>{escape(facturx.author)}</rdf:li></rdf:Seq></dc:creator>
      <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{escape(facturx.subject)}</rdf:li></rdf:Alt></dc:description>
    </rdf:Description>
    <rdf:Description rdf:about="" xmlns:pdf="http://ns.adobe.com/pdf/1.3/">
      <pdf:Producer>{escape(_PRODUCER)}</pdf:Producer>
      <pdf:Keywords>{escape(_KEYWORDS)}</pdf:Keywords>
    </rdf:Description>
    <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/">
      <xmp:CreatorTool>{escape(_CREATOR)}</xmp:CreatorTool>
      <xmp:CreateDate>{stamp}</xmp:CreateDate>
      <xmp:ModifyDate>{stamp}</xmp:ModifyDate>
    </rdf:Description>
    <rdf:Description rdf:about="" xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/"
        xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#" xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#">
      <pdfaExtension:schemas>
        <rdf:Bag>
          <rdf:li rdf:parseType="Resource">
            <pdfaSchema:schema>Factur-X PDFA Extension Schema</pdfaSchema:schema>
            <pdfaSchema:namespaceURI>{_FACTURX_NS}</pdfaSchema:namespaceURI>
            <pdfaSchema:prefix>fx</pdfaSchema:prefix>
            <pdfaSchema:property>
              <rdf:Seq>{properties}
              </rdf:Seq>
            </pdfaSchema:property>
          </rdf:li>
        </rdf:Bag>
      </pdfaExtension:schemas>
    </rdf:Description>
    <rdf:Description rdf:about="" xmlns:fx="{_FACTURX_NS}">
      <fx:DocumentType>INVOICE</fx:DocumentType>
      <fx:DocumentFileName>{_FACTURX_FILENAME}</fx:DocumentFileName>
      <fx:Version>1.0</fx:Version>
      <fx:ConformanceLevel>{_FACTURX_LEVEL}</fx:ConformanceLevel>
    </rdf:Description>
  </rdf:RDF>
</x:xmpmeta>"""
