"""Invoice and credit-note documents: EN 16931 e-invoice XML and Factur-X PDFs.

A pure library: callers pass plain immutable inputs (model.py) and get bytes
back. Nothing here touches the database, the environment or the network.
"""

from decabill.documents.einvoice import build_cii_xml, build_credit_note_xml
from decabill.documents.model import (
    STANDARD_RATED,
    ZERO_RATED,
    DocumentError,
    InvoiceDocument,
    InvoiceLine,
    Issuer,
    Party,
    TaxBreakdown,
    VoidDocument,
    tax_category_code,
)
from decabill.documents.money import (
    breakdown,
    check_amounts,
    compute_line,
    make_line,
    round_cents,
    totals,
)
from decabill.documents.fonts import FontFiles, find_fonts
from decabill.documents.pdf import render_invoice_pdf, render_void_pdf

__all__ = [
    "STANDARD_RATED",
    "ZERO_RATED",
    "DocumentError",
    "FontFiles",
    "InvoiceDocument",
    "InvoiceLine",
    "Issuer",
    "Party",
    "TaxBreakdown",
    "VoidDocument",
    "breakdown",
    "build_cii_xml",
    "build_credit_note_xml",
    "check_amounts",
    "compute_line",
    "find_fonts",
    "make_line",
    "render_invoice_pdf",
    "render_void_pdf",
    "round_cents",
    "tax_category_code",
    "totals",
]
