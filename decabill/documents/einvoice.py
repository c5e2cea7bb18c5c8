"""EN 16931 CII XML for invoices and credit notes (Factur-X profile EN 16931).

The XML is built element by element with lxml in the order the Factur-X EN 16931 XSD prescribes and
checked against that XSD (the one drafthorse ships, parsed once per thread) before it is returned, so a
structural mistake fails here and never reaches a PDF. It is the XML drafthorse's document model wrote
before, byte for byte (`tests/documents/test_einvoice.py::test_xml_is_the_xml_drafthorse_writes`):
building drafthorse's model took half the time of the XML, and the XML a sixth of a render. The
business rules (BR-xx) are covered by the checks in money.check_amounts and by the schematron run in
the tests.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Final

import drafthorse
import pycountry
from lxml import etree

from decabill.documents.model import (
    NOT_SUBJECT,
    DocumentError,
    InvoiceDocument,
    InvoiceLine,
    Issuer,
    Party,
    TaxBreakdown,
    VoidDocument,
)
from decabill.documents.money import CENT, check_amounts, plain

GUIDELINE_EN16931: Final = "urn:cen.eu:en16931:2017"
XSD_SCHEMA: Final = "FACTUR-X_EN16931"
TYPE_INVOICE: Final = "380"  # UNTDID 1001 commercial invoice
TYPE_CREDIT_NOTE: Final = "381"  # UNTDID 1001 credit note
UNIT_ONE: Final = "C62"  # UN/ECE Rec. 20 "one": lines are counted units
PAYMENT_SEPA_CREDIT_TRANSFER: Final = "58"  # UNTDID 4461
VAT: Final = "VAT"
_SCHEME_VAT_ID: Final = "VA"  # seller/buyer VAT registration (BT-31, BT-48)
_SCHEME_EMAIL: Final = "EM"  # electronic address scheme (BT-34, BT-49)
_DATE_FORMAT: Final = "102"  # UNTDID 2379: CCYYMMDD

# The namespaces of a CII document, all declared on the root (as drafthorse writes it, used or not).
_NAMESPACES: Final = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "xs": "http://www.w3.org/2001/XMLSchema",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
_RSM, _RAM, _UDT, _QDT = (f"{{{_NAMESPACES[prefix]}}}" for prefix in ("rsm", "ram", "udt", "qdt"))


def build_cii_xml(doc: InvoiceDocument) -> bytes:
    """Return the UTF-8 CII XML of an invoice (type 380), XSD-validated."""
    check_amounts(doc)
    root, transaction = _new_document(doc.number, TYPE_INVOICE, doc.issue_date, doc.note)
    _add_lines(transaction, doc.lines)
    _add_agreement(transaction, doc.issuer, doc.customer, doc.order_reference, _not_subject(doc.lines))
    _add_delivery(transaction, doc.service_period_end or doc.issue_date)
    settlement = _sub(transaction, _RAM + "ApplicableHeaderTradeSettlement")
    if doc.issuer.iban:
        _sub(settlement, _RAM + "PaymentReference", doc.number)  # BT-83 remittance information
    _sub(settlement, _RAM + "InvoiceCurrencyCode", _currency(doc.currency))
    if doc.issuer.iban:
        _add_sepa_transfer(settlement, doc.issuer)
    _add_tax_breakdown(settlement, doc.tax_breakdown)
    _add_period(settlement, doc.service_period_start, doc.service_period_end)
    # BR-CO-25: with an amount due, a due date or a terms text must be present; we always give the text
    # and add the date when known.
    _add_terms(settlement, _terms_text(doc), doc.due_date)
    _add_summation(settlement, doc, paid=doc.amount_paid, due=doc.amount_due)
    return _serialize(root)


def build_credit_note_xml(doc: VoidDocument) -> bytes:
    """Return the CII XML of the credit note (type 381) that voids an invoice.

    Amounts stay positive: the type code carries the sign (EN 16931 credit note).
    Nothing is collected, so there are no payment means; the amount due is the
    credited total, to be offset against the voided invoice.
    """
    check_amounts(doc)
    root, transaction = _new_document(
        doc.number, TYPE_CREDIT_NOTE, doc.issue_date,
        f"Credit note for invoice {doc.voided_invoice_number}. Reason: {doc.reason}",
    )
    _add_lines(transaction, doc.lines)
    _add_agreement(transaction, doc.issuer, doc.customer, doc.order_reference, _not_subject(doc.lines))
    _add_delivery(transaction, doc.service_period_end or doc.voided_invoice_date or doc.issue_date)
    settlement = _sub(transaction, _RAM + "ApplicableHeaderTradeSettlement")
    _sub(settlement, _RAM + "InvoiceCurrencyCode", _currency(doc.currency))
    _add_tax_breakdown(settlement, doc.tax_breakdown)
    _add_period(settlement, doc.service_period_start, doc.service_period_end)
    _add_terms(settlement, f"Credited against invoice {doc.voided_invoice_number}.", None)
    _add_summation(settlement, doc, paid=Decimal("0.00"), due=doc.total)
    reference = _sub(settlement, _RAM + "InvoiceReferencedDocument")
    _sub(reference, _RAM + "IssuerAssignedID", doc.voided_invoice_number)  # BT-25
    if doc.voided_invoice_date:
        _add_date(reference, "FormattedIssueDateTime", doc.voided_invoice_date, _QDT)  # BT-26
    return _serialize(root)


def _serialize(root: etree._Element) -> bytes:
    """The document's XML, checked against the Factur-X EN 16931 XSD first."""
    schema = _xsd()
    if not schema.validate(root):
        raise DocumentError(f"CII XML not valid against {XSD_SCHEMA}: {schema.error_log.last_error}")
    return bytes(etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8"))


_schemas = threading.local()  # one parsed schema per thread (renders run in worker threads; a validator keeps state)


def _xsd() -> etree.XMLSchema:
    schema = getattr(_schemas, "xsd", None)
    if schema is None:
        name = XSD_SCHEMA.replace("FACTUR-X_", "Factur-X_1.0.07_")  # drafthorse's file name for the schema
        schema = _schemas.xsd = etree.XMLSchema(file=str(Path(drafthorse.__file__).parent / "schema" / f"{name}.xsd"))
    return schema


# --- elements -------------------------------------------------------------------


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
    node = etree.SubElement(parent, tag, attributes)
    if text is not None:
        node.text = text
    return node


def _add_date(parent: etree._Element, tag: str, day: date, namespace: str = _UDT) -> None:
    _sub(_sub(parent, _RAM + tag), namespace + "DateTimeString", day.strftime("%Y%m%d"), format=_DATE_FORMAT)


# --- document skeleton ------------------------------------------------------


def _new_document(
    number: str, type_code: str, issue_date: date, note: str | None
) -> tuple[etree._Element, etree._Element]:
    """The root with the document context and header; returns it and the (empty) trade transaction."""
    if not number:
        raise DocumentError("the document needs a number")
    root = etree.Element(_RSM + "CrossIndustryInvoice", nsmap=_NAMESPACES)
    context = _sub(root, _RSM + "ExchangedDocumentContext")
    _sub(_sub(context, _RAM + "GuidelineSpecifiedDocumentContextParameter"), _RAM + "ID", GUIDELINE_EN16931)
    header = _sub(root, _RSM + "ExchangedDocument")
    _sub(header, _RAM + "ID", number)
    _sub(header, _RAM + "TypeCode", type_code)
    _add_date(header, "IssueDateTime", issue_date)
    if note:
        _sub(_sub(header, _RAM + "IncludedNote"), _RAM + "Content", note)
    return root, _sub(root, _RSM + "SupplyChainTradeTransaction")


# --- parties ------------------------------------------------------------------


def _not_subject(lines: Sequence[InvoiceLine]) -> bool:
    return any(line.tax_category == NOT_SUBJECT for line in lines)


def _add_agreement(
    transaction: etree._Element, issuer: Issuer, customer: Party, order_reference: str | None,
    not_subject: bool = False,
) -> None:
    _check_seller(issuer)
    _check_buyer(customer)
    agreement = _sub(transaction, _RAM + "ApplicableHeaderTradeAgreement")
    # Outside the scope of VAT neither party's VAT ID may appear (BR-O-02); the seller is then
    # identified by its VAT ID given as the seller identifier BT-29 (BR-CO-26).
    seller_id = _compact(issuer.vat_id) if not_subject and issuer.vat_id else None
    _add_party(agreement, "SellerTradeParty", issuer, with_vat_id=not not_subject, party_id=seller_id)
    _add_party(agreement, "BuyerTradeParty", customer, with_vat_id=not not_subject)
    if order_reference:
        _sub(_sub(agreement, _RAM + "BuyerOrderReferencedDocument"), _RAM + "IssuerAssignedID",
             order_reference)  # BT-13


def _check_seller(issuer: Issuer) -> None:
    # BR-06/BR-08/BR-09 name, address, country; BR-S-02 VAT id with standard rate.
    missing = _missing(
        issuer, ("name", "address_line1", "postal_code", "city", "country", "vat_id")
    )
    if missing:
        raise DocumentError(
            f"Billing issuer is not configured (missing: {', '.join(missing)})"
        )


def _check_buyer(customer: Party) -> None:
    # EN 16931 itself only needs name and country (BR-07, BR-11); a postal
    # address is what a buyer's accounting needs to book the invoice.
    missing = _missing(
        customer, ("name", "address_line1", "postal_code", "city", "country")
    )
    if missing:
        raise DocumentError(
            "Buyer address is incomplete for e-invoice "
            "(street, postal code, city, and country are required)"
        )


def _missing(party: Party, names: Sequence[str]) -> list[str]:
    return [name for name in names if not (getattr(party, name) or "").strip()]


def _add_party(
    agreement: etree._Element, tag: str, party: Party, *, with_vat_id: bool, party_id: str | None = None
) -> None:
    target = _sub(agreement, _RAM + tag)
    if party_id:
        _sub(target, _RAM + "ID", party_id)
    _sub(target, _RAM + "Name", party.name)
    address = _sub(target, _RAM + "PostalTradeAddress")
    _sub(address, _RAM + "PostcodeCode", party.postal_code)
    _sub(address, _RAM + "LineOne", party.address_line1)
    if party.address_line2:
        _sub(address, _RAM + "LineTwo", party.address_line2)
    _sub(address, _RAM + "CityName", party.city)
    _sub(address, _RAM + "CountryID", _country(party.country or ""))
    if party.email:
        _sub(_sub(target, _RAM + "URIUniversalCommunication"), _RAM + "URIID", party.email, schemeID=_SCHEME_EMAIL)
    if party.vat_id and with_vat_id:
        _sub(_sub(target, _RAM + "SpecifiedTaxRegistration"), _RAM + "ID", _compact(party.vat_id),
             schemeID=_SCHEME_VAT_ID)


def _country(code: str) -> str:
    code = code.strip().upper()
    if pycountry.countries.get(alpha_2=code) is None:
        raise DocumentError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def _currency(code: str) -> str:
    code = code.strip().upper()
    if pycountry.currencies.get(alpha_3=code) is None:
        raise DocumentError(f"{code!r} is not an ISO 4217 currency code")
    return code


def _compact(identifier: str) -> str:
    """VAT ids and IBANs are printed grouped with spaces but exchanged without."""
    return "".join(identifier.split()).upper()


# --- lines and tax ------------------------------------------------------------


def _add_lines(transaction: etree._Element, lines: Sequence[InvoiceLine]) -> None:
    for position, line in enumerate(lines, start=1):
        _add_line_item(transaction, position, line)


def _add_line_item(transaction: etree._Element, position: int, line: InvoiceLine) -> None:
    item = _sub(transaction, _RAM + "IncludedSupplyChainTradeLineItem")
    _sub(_sub(item, _RAM + "AssociatedDocumentLineDocument"), _RAM + "LineID", str(position))
    _sub(_sub(item, _RAM + "SpecifiedTradeProduct"), _RAM + "Name", line.description)
    quantity, price = line.quantity, line.unit_price
    if price < 0:
        # BR-27 forbids a negative item price; a credit line (discount) is
        # expressed as a negative quantity at a positive price instead.
        quantity, price = -quantity, -price
    agreement = _sub(item, _RAM + "SpecifiedLineTradeAgreement")
    _sub(_sub(agreement, _RAM + "NetPriceProductTradePrice"), _RAM + "ChargeAmount", _fixed(price))
    _sub(_sub(item, _RAM + "SpecifiedLineTradeDelivery"), _RAM + "BilledQuantity", _fixed(quantity),
         unitCode=UNIT_ONE)
    settlement = _sub(item, _RAM + "SpecifiedLineTradeSettlement")
    tax = _sub(settlement, _RAM + "ApplicableTradeTax")
    _sub(tax, _RAM + "TypeCode", VAT)
    _sub(tax, _RAM + "CategoryCode", line.tax_category)
    if line.tax_category != NOT_SUBJECT:  # no rate outside the scope of VAT (BR-O-05)
        _sub(tax, _RAM + "RateApplicablePercent", _fixed(line.tax_rate))
    _sub(_sub(settlement, _RAM + "SpecifiedTradeSettlementLineMonetarySummation"), _RAM + "LineTotalAmount",
         _cents(line.net_amount))


def _add_delivery(transaction: etree._Element, day: date) -> None:
    # The XSD requires ApplicableHeaderTradeDelivery, and validators flag it
    # when empty (PEPPOL-EN16931-R008); the services were rendered up to the
    # end of the billed period, which is what BT-72 asks for.
    delivery = _sub(transaction, _RAM + "ApplicableHeaderTradeDelivery")
    _add_date(_sub(delivery, _RAM + "ActualDeliverySupplyChainEvent"), "OccurrenceDateTime", day)


def _add_tax_breakdown(settlement: etree._Element, rows: Sequence[TaxBreakdown]) -> None:
    for row in rows:
        tax = _sub(settlement, _RAM + "ApplicableTradeTax")
        _sub(tax, _RAM + "CalculatedAmount", _cents(row.tax_amount))
        _sub(tax, _RAM + "TypeCode", VAT)
        exemption = row.exemption
        if exemption:  # BR-AE-10, BR-O-10, BR-E-10
            _sub(tax, _RAM + "ExemptionReason", exemption[1])
        _sub(tax, _RAM + "BasisAmount", _cents(row.taxable_amount))
        _sub(tax, _RAM + "CategoryCode", row.category)
        if exemption:
            _sub(tax, _RAM + "ExemptionReasonCode", exemption[0])
        if row.category != NOT_SUBJECT:  # BR-O-09: no rate outside the scope of VAT
            _sub(tax, _RAM + "RateApplicablePercent", _fixed(row.rate))


def _add_period(settlement: etree._Element, start: date | None, end: date | None) -> None:
    if start is None and end is None:
        return
    if start and end and end < start:
        raise DocumentError(
            f"service period ends ({end}) before it starts ({start})"
        )  # BR-29
    period = _sub(settlement, _RAM + "BillingSpecifiedPeriod")
    if start:
        _add_date(period, "StartDateTime", start)
    if end:
        _add_date(period, "EndDateTime", end)


# --- payment ------------------------------------------------------------------


def _add_sepa_transfer(settlement: etree._Element, issuer: Issuer) -> None:
    # Without an IBAN there are no payment means at all: BG-16 is optional,
    # and "58" without an account would break BR-61.
    means = _sub(settlement, _RAM + "SpecifiedTradeSettlementPaymentMeans")
    _sub(means, _RAM + "TypeCode", PAYMENT_SEPA_CREDIT_TRANSFER)
    _sub(means, _RAM + "Information", "SEPA credit transfer")
    account = _sub(means, _RAM + "PayeePartyCreditorFinancialAccount")
    _sub(account, _RAM + "IBANID", _compact(issuer.iban or ""))  # BR-61
    # BT-85 is the account holder (the issuer), not the bank's name; the bank
    # itself is identified by the BIC.
    _sub(account, _RAM + "AccountName", issuer.name)
    if issuer.bic:
        _sub(_sub(means, _RAM + "PayeeSpecifiedCreditorFinancialInstitution"), _RAM + "BICID",
             _compact(issuer.bic))


def _add_terms(settlement: etree._Element, description: str, due: date | None) -> None:
    terms = _sub(settlement, _RAM + "SpecifiedTradePaymentTerms")
    _sub(terms, _RAM + "Description", description)
    if due:
        _add_date(terms, "DueDateDateTime", due)


def _terms_text(doc: InvoiceDocument) -> str:
    if doc.amount_due <= 0:
        return "Paid in full. No payment is due."
    parts = []
    if doc.due_date:
        due = doc.due_date.isoformat()
        parts.append(f"Please pay {doc.amount_due:.2f} {doc.currency} by {due}.")
    else:
        parts.append(f"Please pay {doc.amount_due:.2f} {doc.currency} on receipt.")
    parts.append(f"Reference: {doc.number}.")
    if doc.payment_note:
        parts.append(doc.payment_note)
    return " ".join(parts)


def _add_summation(
    settlement: etree._Element, doc: InvoiceDocument | VoidDocument, *, paid: Decimal, due: Decimal
) -> None:
    summation = _sub(settlement, _RAM + "SpecifiedTradeSettlementHeaderMonetarySummation")
    _sub(summation, _RAM + "LineTotalAmount", _cents(doc.subtotal))  # BR-CO-10: no document-level charges
    _sub(summation, _RAM + "TaxBasisTotalAmount", _cents(doc.subtotal))  # BR-CO-13
    # BT-110 must state its currency (BR-53 context); the other totals must not.
    _sub(summation, _RAM + "TaxTotalAmount", _cents(doc.tax_total), currencyID=_currency(doc.currency))  # BR-CO-14
    _sub(summation, _RAM + "GrandTotalAmount", _cents(doc.total))  # BR-CO-15
    if paid:
        _sub(summation, _RAM + "TotalPrepaidAmount", _cents(paid))
    _sub(summation, _RAM + "DuePayableAmount", _cents(due))  # BR-CO-16


# --- number formatting ----------------------------------------------------------


def _cents(amount: Decimal) -> str:
    # Amounts carry exactly two decimals (BR-DEC-*); quantize also avoids "1E+2".
    return str(amount.quantize(CENT))


def _fixed(value: Decimal) -> str:
    """Quantities, prices and rates without trailing zeros or exponent notation."""
    return str(plain(value.quantize(Decimal("0.0001"))))
