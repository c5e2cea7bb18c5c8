"""The CII XML as drafthorse's document model writes it: the reference the XML of
decabill/documents/einvoice.py is compared with (`test_xml_is_the_xml_drafthorse_writes`).

This is einvoice.py as it was while it built drafthorse's model (until December 2026): the same
checks, the same elements, serialised (and XSD-checked) by drafthorse itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Final

import pycountry
from drafthorse.models.accounting import ApplicableTradeTax
from drafthorse.models.document import Document
from drafthorse.models.note import IncludedNote
from drafthorse.models.party import TaxRegistration, TradeParty
from drafthorse.models.payment import PaymentMeans, PaymentTerms
from drafthorse.models.trade import TradeSettlement
from drafthorse.models.tradelines import LineItem

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


def build_cii_xml(doc: InvoiceDocument) -> bytes:
    """Return the UTF-8 CII XML of an invoice (type 380), XSD-validated."""
    check_amounts(doc)
    xml = _new_document(doc.number, TYPE_INVOICE, doc.issue_date, doc.currency)
    if doc.note:
        _add_note(xml, doc.note)
    _fill_parties(xml, doc.issuer, doc.customer, doc.order_reference, _not_subject(doc.lines))
    _add_lines(xml, doc.lines)
    _set_delivery_date(xml, doc.service_period_end or doc.issue_date)
    settlement = xml.trade.settlement
    if doc.issuer.iban:
        settlement.payment_reference = doc.number  # BT-83 remittance information
        settlement.payment_means.add(_sepa_transfer(doc.issuer))
    _add_tax_breakdown(settlement, doc.tax_breakdown)
    _set_period(settlement, doc.service_period_start, doc.service_period_end)
    settlement.terms.add(_invoice_terms(doc))
    _set_summation(xml, doc, paid=doc.amount_paid, due=doc.amount_due)
    return xml.serialize(schema=XSD_SCHEMA)


def build_credit_note_xml(doc: VoidDocument) -> bytes:
    """Return the CII XML of the credit note (type 381) that voids an invoice.

    Amounts stay positive: the type code carries the sign (EN 16931 credit note).
    Nothing is collected, so there are no payment means; the amount due is the
    credited total, to be offset against the voided invoice.
    """
    check_amounts(doc)
    xml = _new_document(doc.number, TYPE_CREDIT_NOTE, doc.issue_date, doc.currency)
    _add_note(
        xml,
        f"Credit note for invoice {doc.voided_invoice_number}. Reason: {doc.reason}",
    )
    _fill_parties(xml, doc.issuer, doc.customer, doc.order_reference, _not_subject(doc.lines))
    _add_lines(xml, doc.lines)
    _set_delivery_date(
        xml, doc.service_period_end or doc.voided_invoice_date or doc.issue_date
    )
    settlement = xml.trade.settlement
    _add_tax_breakdown(settlement, doc.tax_breakdown)
    _set_period(settlement, doc.service_period_start, doc.service_period_end)
    terms = PaymentTerms()
    terms.description = f"Credited against invoice {doc.voided_invoice_number}."
    settlement.terms.add(terms)
    _set_summation(xml, doc, paid=Decimal("0.00"), due=doc.total)
    reference = settlement.invoice_referenced_document
    reference.issuer_assigned_id = doc.voided_invoice_number  # BT-25
    if doc.voided_invoice_date:
        reference.issue_date_time = doc.voided_invoice_date  # BT-26
    return xml.serialize(schema=XSD_SCHEMA)


# --- document skeleton ------------------------------------------------------


def _new_document(
    number: str, type_code: str, issue_date: date, currency: str
) -> Document:
    if not number:
        raise DocumentError("the document needs a number")
    xml = Document()
    xml.context.guideline_parameter.id = GUIDELINE_EN16931
    xml.header.id = number
    xml.header.type_code = type_code
    xml.header.issue_date_time = issue_date
    xml.trade.settlement.currency_code = _currency(currency)
    return xml


def _add_note(xml: Document, text: str) -> None:
    note = IncludedNote()
    note.content = text
    xml.header.notes.add(note)


# --- parties ------------------------------------------------------------------


def _not_subject(lines: Sequence[InvoiceLine]) -> bool:
    return any(line.tax_category == NOT_SUBJECT for line in lines)


def _fill_parties(
    xml: Document, issuer: Issuer, customer: Party, order_reference: str | None,
    not_subject: bool = False,
) -> None:
    agreement = xml.trade.agreement
    _check_seller(issuer)
    _check_buyer(customer)
    # Outside the scope of VAT neither party's VAT ID may appear (BR-O-02); the seller is then
    # identified by its VAT ID given as the seller identifier BT-29 (BR-CO-26).
    _fill_party(agreement.seller, issuer, with_vat_id=not not_subject)
    _fill_party(agreement.buyer, customer, with_vat_id=not not_subject)
    if not_subject and issuer.vat_id:
        agreement.seller.id = _compact(issuer.vat_id)
    if order_reference:
        agreement.buyer_order.issuer_assigned_id = order_reference  # BT-13


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


def _fill_party(target: TradeParty, party: Party, *, with_vat_id: bool = True) -> None:
    target.name = party.name
    address = target.address
    address.line_one = party.address_line1
    if party.address_line2:
        address.line_two = party.address_line2
    address.postcode = party.postal_code
    address.city_name = party.city
    address.country_id = _country(party.country or "")
    if party.email:
        target.electronic_address.uri_ID = (_SCHEME_EMAIL, party.email)
    if party.vat_id and with_vat_id:
        registration = TaxRegistration()
        registration.id = (_SCHEME_VAT_ID, _compact(party.vat_id))
        target.tax_registrations.add(registration)


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


def _add_lines(xml: Document, lines: Sequence[InvoiceLine]) -> None:
    for position, line in enumerate(lines, start=1):
        xml.trade.items.add(_line_item(position, line))


def _line_item(position: int, line: InvoiceLine) -> LineItem:
    item = LineItem()
    item.document.line_id = str(position)
    item.product.name = line.description
    quantity, price = line.quantity, line.unit_price
    if price < 0:
        # BR-27 forbids a negative item price; a credit line (discount) is
        # expressed as a negative quantity at a positive price instead.
        quantity, price = -quantity, -price
    item.agreement.net.amount = _fixed(price)
    item.delivery.billed_quantity = (_fixed(quantity), UNIT_ONE)
    tax = item.settlement.trade_tax
    tax.type_code = VAT
    tax.category_code = line.tax_category
    if line.tax_category != NOT_SUBJECT:  # no rate outside the scope of VAT (BR-O-05)
        tax.rate_applicable_percent = _fixed(line.tax_rate)
    item.settlement.monetary_summation.total_amount = _cents(line.net_amount)
    return item


def _set_delivery_date(xml: Document, day: date) -> None:
    # The XSD requires ApplicableHeaderTradeDelivery, and validators flag it
    # when empty (PEPPOL-EN16931-R008); the services were rendered up to the
    # end of the billed period, which is what BT-72 asks for.
    xml.trade.delivery.event.occurrence = day


def _add_tax_breakdown(
    settlement: TradeSettlement, rows: Sequence[TaxBreakdown]
) -> None:
    for row in rows:
        tax = ApplicableTradeTax()
        tax.calculated_amount = _cents(row.tax_amount)
        tax.type_code = VAT
        tax.basis_amount = _cents(row.taxable_amount)
        exemption = row.exemption
        if exemption:  # BR-AE-10, BR-O-10, BR-E-10
            tax.exemption_reason = exemption[1]
        tax.category_code = row.category
        if exemption:
            tax.exemption_reason_code = exemption[0]
        if row.category != NOT_SUBJECT:  # BR-O-09: no rate outside the scope of VAT
            tax.rate_applicable_percent = _fixed(row.rate)
        settlement.trade_tax.add(tax)


def _set_period(
    settlement: TradeSettlement, start: date | None, end: date | None
) -> None:
    if start is None and end is None:
        return
    if start and end and end < start:
        raise DocumentError(
            f"service period ends ({end}) before it starts ({start})"
        )  # BR-29
    period = settlement.period
    if start:
        period.start = start
    if end:
        period.end = end


# --- payment ------------------------------------------------------------------


def _sepa_transfer(issuer: Issuer) -> PaymentMeans:
    # Without an IBAN there are no payment means at all: BG-16 is optional,
    # and "58" without an account would break BR-61.
    means = PaymentMeans()
    means.type_code = PAYMENT_SEPA_CREDIT_TRANSFER
    means.information.add("SEPA credit transfer")
    means.payee_account.iban = _compact(issuer.iban or "")  # BR-61
    # BT-85 is the account holder (the issuer), not the bank's name; the bank
    # itself is identified by the BIC.
    means.payee_account.account_name = issuer.name
    if issuer.bic:
        means.payee_institution.bic = _compact(issuer.bic)
    return means


def _invoice_terms(doc: InvoiceDocument) -> PaymentTerms:
    # BR-CO-25: with an amount due, a due date or a terms text must be present;
    # we always give the text and add the date when known.
    terms = PaymentTerms()
    terms.description = _terms_text(doc)
    if doc.due_date:
        terms.due = doc.due_date
    return terms


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


def _set_summation(
    xml: Document, doc: InvoiceDocument | VoidDocument, *, paid: Decimal, due: Decimal
) -> None:
    summation = xml.trade.settlement.monetary_summation
    summation.line_total = _cents(doc.subtotal)  # BR-CO-10: no document-level charges
    summation.tax_basis_total = _cents(doc.subtotal)  # BR-CO-13
    # BT-110 must state its currency (BR-53 context); the other totals must not.
    summation.tax_total = (_cents(doc.tax_total), _currency(doc.currency))  # BR-CO-14
    summation.grand_total = _cents(doc.total)  # BR-CO-15
    if paid:
        summation.prepaid_total = _cents(paid)
    summation.due_amount = _cents(due)  # BR-CO-16


# --- number formatting ----------------------------------------------------------


def _cents(amount: Decimal) -> Decimal:
    # Amounts carry exactly two decimals (BR-DEC-*); quantize also avoids "1E+2".
    return amount.quantize(CENT)


def _fixed(value: Decimal) -> Decimal:
    """Quantities, prices and rates without trailing zeros or exponent notation."""
    return plain(value.quantize(Decimal("0.0001")))
