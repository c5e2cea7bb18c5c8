"""Invoice PDFs from stored invoices: the e-invoice XML (XSD + EN 16931 schematron) carries exactly the database's
figures — per line, per tax rate and in total — for an invoice with many lines at both tax rates; files are
stored under BILLING_INVOICE_PDF_STORAGE_PATH and regenerated only when missing (or BILLING_SKIP_FILE_CACHE)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from decabill import db
from decabill.invoicing import invoices
from decabill.invoicing.invoices import LineInput
from decabill.invoicing.states import SYSTEM
from decabill.tenancy import bound_tenant
from models.invoicing import Invoice, InvoiceLine
from tests.helpers import assert_error
from tests.invoicing.conftest import (
    HEADER_TAX,
    embedded_xml,
    pdf_text,
    rows,
    schematron_failures,
    summation,
    user_id,
    xpath_text,
)

D = Decimal
QUANTITIES = ("1", "2.5", "3", "0.3333", "7", "12", "1.5")
PRICES = ("4.99", "12.345", "0.015", "199.99", "1.005", "0.125", "33.3333")


def awkward_lines(count: int = 30) -> list[LineInput]:
    """Quantities and prices whose products land on or near half cents, at both rates."""
    return [LineInput(description=f"Position {n + 1}: cloud add-on", quantity=D(QUANTITIES[n % 7]),
                      unit_price_net=D(PRICES[n % 7]), tax_category="reduced" if n % 3 == 0 else "standard")
            for n in range(count)]


async def issued_invoice(owner, lines: list[LineInput]) -> Invoice:
    with bound_tenant("default"):
        async with db.transaction() as session:
            invoice = await invoices.create_draft(session, user_id=owner, lines=lines, actor=SYSTEM)
            await invoices.issue(session, invoice, actor=SYSTEM)
    return invoice


async def test_xml_totals_equal_the_database_for_mixed_rates_and_many_lines(billing_api, customer):
    invoice = await issued_invoice(user_id(customer), awkward_lines())
    detail = (await billing_api.get(f"/invoices/ref/{invoice.id}", token=customer)).json()
    assert "subscriptionId" not in detail  # an invoice without subscription leaves it out
    response = await billing_api.get(f"/invoices/ref/{invoice.id}/pdf", token=customer)
    assert response.status_code == 200
    xml = embedded_xml(response.content)
    assert schematron_failures(xml) == []

    with bound_tenant("default"):
        [stored] = await rows(Invoice, Invoice.id == invoice.id)
        lines = sorted(await rows(InvoiceLine, InvoiceLine.invoice_id == invoice.id), key=lambda line: line.position)
    assert summation(xml) == {
        "LineTotalAmount": stored.subtotal_net, "TaxBasisTotalAmount": stored.subtotal_net,
        "TaxTotalAmount": stored.tax_total, "GrandTotalAmount": stored.total_gross, "DuePayableAmount": stored.total_gross,
    }
    line_totals = xpath_text(xml, "//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount")
    assert [D(v) for v in line_totals] == [line.line_net for line in lines]
    rates = [D(v) for v in xpath_text(xml, f"{HEADER_TAX}/ram:RateApplicablePercent")]
    taxes = [D(v) for v in xpath_text(xml, f"{HEADER_TAX}/ram:CalculatedAmount")]
    assert rates == [D(7), D(19)]
    for rate, tax in zip(rates, taxes):
        assert tax == sum(line.line_tax for line in lines if line.tax_rate == rate)
    # The API shows the same figures.
    assert [(b["taxCategory"], b["taxRate"], D(str(b["taxAmount"]))) for b in detail["taxBreakdown"]] == \
        [("reduced", 7, taxes[0]), ("standard", 19, taxes[1])]
    assert D(str(detail["totalGross"])) == stored.total_gross
    assert [D(str(item["lineNet"])) for item in detail["lineItems"]] == [line.line_net for line in lines]
    assert stored.invoice_number in pdf_text(response.content)


async def test_pdfs_are_stored_and_regenerated_only_when_missing(billing_api, env, make_api, customer, tmp_path):
    invoice = await issued_invoice(user_id(customer), [LineInput(description="Setup", unit_price_net=D("50"))])
    stored = Path(tmp_path / "invoices" / invoice.pdf_storage_key)
    assert invoice.pdf_storage_key == f"default/manual/{invoice.user_id}/{invoice.id}.pdf"
    first = await billing_api.get(f"/invoices/ref/{invoice.id}/pdf", token=customer)  # the mail already made it
    assert stored.read_bytes() == first.content

    stored.write_bytes(b"%PDF-cached")  # the cache is what is served ...
    assert (await billing_api.get(f"/invoices/ref/{invoice.id}/pdf", token=customer)).content == b"%PDF-cached"
    env.update(BILLING_SKIP_FILE_CACHE="true")  # ... unless BILLING_SKIP_FILE_CACHE=true
    fresh = await (await make_api()).get(f"/invoices/ref/{invoice.id}/pdf", token=customer)
    assert fresh.content.startswith(b"%PDF-1") and embedded_xml(fresh.content)
    env.update(BILLING_SKIP_FILE_CACHE=None)
    stored.unlink()  # a lost file is generated again from the invoice row (its seller and buyer copies)
    api = await make_api()
    again = await api.get(f"/invoices/ref/{invoice.id}/pdf", token=customer)
    assert again.status_code == 200 and stored.is_file()
    assert xpath_text(embedded_xml(again.content), "//rsm:ExchangedDocument/ram:ID") == [invoice.invoice_number]


async def test_the_seller_and_buyer_of_an_issued_invoice_do_not_change_with_settings_or_profile(
        billing_api, env, make_api, customer):
    invoice = await issued_invoice(user_id(customer), [LineInput(description="Setup", unit_price_net=D("50"))])
    changed = await billing_api.post("/customer-profile", token=customer, json={"company": "Renamed Ltd"})
    assert changed.status_code == 200
    env.update(BILLING_ISSUER_NAME="Another Seller GmbH", BILLING_SKIP_FILE_CACHE="true")
    text = pdf_text((await (await make_api()).get(f"/invoices/ref/{invoice.id}/pdf", token=customer)).content)
    assert "Decabill Hosting GmbH" in text and "Another Seller" not in text
    assert "Ada Lovelace" in text and "Renamed Ltd" not in text


async def test_drafts_have_no_pdf_and_issuing_needs_a_seller_and_a_complete_profile(billing_api, env, make_api,
                                                                                   admin, customer):
    from decabill.invoicing.errors import IssuerNotConfigured, ProfileIncompleteForInvoice

    owner = user_id(customer)
    with bound_tenant("default"):
        async with db.transaction() as session:
            draft = await invoices.create_draft(session, user_id=owner, actor=SYSTEM,
                                                lines=[LineInput(description="Setup", unit_price_net=D("50"))])
    detail = (await billing_api.get(f"/invoices/ref/{draft.id}", token=customer)).json()
    assert detail["status"] == "draft" and detail["invoiceNumber"] is None
    assert not detail["canDownload"] and not detail["canPay"]
    assert_error(await billing_api.get(f"/invoices/ref/{draft.id}/pdf", token=customer), 400,
                 "Draft invoices have no PDF")

    env.update(BILLING_ISSUER_VAT_ID="")
    await make_api()
    with bound_tenant("default"):
        try:
            async with db.transaction() as session:
                await invoices.issue(session, await invoices.locked(session, draft.id), actor=SYSTEM)
        except IssuerNotConfigured as exc:
            assert exc.message == "Billing issuer is not configured: set BILLING_ISSUER_VAT_ID"
        else:  # pragma: no cover
            raise AssertionError("issued without a seller")
    env.update(BILLING_ISSUER_VAT_ID="DE123456789")
    await make_api()
    other = await billing_api.user_token(admin, "noprofile@example.com")
    with bound_tenant("default"):
        async with db.transaction() as session:
            bare = await invoices.create_draft(session, user_id=user_id(other), actor=SYSTEM,
                                               lines=[LineInput(description="Setup", unit_price_net=D("50"))])
        try:
            async with db.transaction() as session:
                await invoices.issue(session, await invoices.locked(session, bare.id), actor=SYSTEM)
        except ProfileIncompleteForInvoice:
            pass
        else:  # pragma: no cover
            raise AssertionError("issued without a profile")
        numbered = await rows(Invoice, Invoice.invoice_number.is_not(None))
    assert numbered == []  # nothing was numbered
