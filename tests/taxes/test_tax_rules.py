"""The EU VAT rule of each issued invoice, through the admin API: domestic, reverse charge, OSS (on and off),
outside the EU (also a special territory by postal code), a rate change on its first day, a profile edited
after issue, an admin's explicit line category, and the tax statistics. Every issued invoice's XML passes the
Factur-X XSD and the EN 16931 schematron (`invoice_files`)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from tests.invoicing.conftest import HEADER_TAX, embedded_xml, schematron_failures, xpath_text
from tests.subscriptions.conftest import PROFILE
from tests.taxes.conftest import BASE, FR_PROFILE, FR_VAT_ID, US_PROFILE, customer, invoice_files, issued_manual, line

D = Decimal
LINES = [line("Managed server", 1, 100), line("E-book", 2, 25, taxCategory="reduced")]
BUYER_TAX_ID = "//ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID"
SELLER_TAX_ID = "//ram:SellerTradeParty/ram:SpecifiedTaxRegistration/ram:ID"


def figures(invoice: dict) -> list[tuple[str, str, float, float]]:
    return [(item["taxCategory"], item["vatCategoryCode"], item["taxRate"], item["lineTax"])
            for item in invoice["lineItems"]]


async def test_domestic_buyer_keeps_the_configured_rates(tax_api, admin):
    _, user_id = await customer(tax_api, admin, "de@example.com", PROFILE)
    invoice = await issued_manual(tax_api, admin, user_id, LINES)
    assert invoice["taxRule"] == "domestic"
    assert figures(invoice) == [("standard", "S", 19, 19.0), ("reduced", "S", 7, 3.5)]
    assert D(str(invoice["totalGross"])) == D("172.50")
    xml, text = await invoice_files(tax_api, admin, invoice["id"])
    assert xpath_text(xml, f"{HEADER_TAX}/ram:CategoryCode") == ["S", "S"]
    assert "Domestic (DE)" in text


async def test_reverse_charge_for_an_eu_business_with_a_valid_vat_id(tax_api, admin, vies, env, make_api):
    vies.register(FR_VAT_ID)
    token, user_id = await customer(tax_api, admin, "fr@example.com", {**FR_PROFILE, "vatId": FR_VAT_ID})
    invoice = await issued_manual(tax_api, admin, user_id, LINES)
    assert invoice["taxRule"] == "reverse_charge" and invoice["buyerVatId"] == FR_VAT_ID
    assert figures(invoice) == [("standard", "AE", 0, 0.0), ("reduced", "AE", 0, 0.0)]
    assert D(str(invoice["taxTotal"])) == 0 and D(str(invoice["totalGross"])) == D(150.00)
    snapshot = invoice["taxSnapshot"]
    assert snapshot["buyerCountry"] == "FR" and snapshot["vatIdConsultationNumber"].startswith("WAPI")
    assert snapshot["exemptionReasonCode"] == "VATEX-EU-AE"
    xml, text = await invoice_files(tax_api, admin, invoice["id"])
    assert xpath_text(xml, f"{HEADER_TAX}/ram:CategoryCode") == ["AE"]
    assert xpath_text(xml, f"{HEADER_TAX}/ram:ExemptionReasonCode") == ["VATEX-EU-AE"]
    assert xpath_text(xml, BUYER_TAX_ID) == [FR_VAT_ID] and xpath_text(xml, SELLER_TAX_ID) == ["DE123456789"]
    assert "Reverse charge" in text and FR_VAT_ID in text and "Article 196" in text

    # The customer edits the profile afterwards (no VAT ID, moved to the US): the issued invoice does not change,
    # neither its detail nor a freshly rendered PDF.
    edited = await tax_api.post("/customer-profile", token=token, json={"vatId": "", **US_PROFILE})
    assert edited.status_code == 200, edited.text
    env.update(BILLING_SKIP_FILE_CACHE="true")
    api = await make_api()
    detail = (await api.get(f"{BASE}/invoices/{invoice['id']}", token=admin)).json()
    assert (detail["taxRule"], detail["buyerVatId"], detail["taxSnapshot"]) == ("reverse_charge", FR_VAT_ID, snapshot)
    xml, text = await invoice_files(api, admin, invoice["id"])
    assert xpath_text(xml, BUYER_TAX_ID) == [FR_VAT_ID] and "Paris" in text
    # ... while the next invoice follows the new profile.
    assert (await issued_manual(api, admin, user_id, LINES))["taxRule"] == "outside_eu"


async def test_oss_charges_the_buyer_countrys_rates_when_enabled(tax_api, admin, env, make_api):
    _, user_id = await customer(tax_api, admin, "fr@example.com", FR_PROFILE)
    below_threshold = await issued_manual(tax_api, admin, user_id, LINES)
    assert below_threshold["taxRule"] == "oss"
    assert figures(below_threshold) == [("standard", "S", 19, 19.0), ("reduced", "S", 7, 3.5)]

    env.update(BILLING_OSS_ENABLED="true")
    api = await make_api()
    invoice = await issued_manual(api, admin, user_id, LINES)
    assert invoice["taxRule"] == "oss" and invoice["taxSnapshot"]["taxCountry"] == "FR"
    assert figures(invoice) == [("standard", "S", 20, 20.0), ("reduced", "S", 10, 5.0)]
    xml, text = await invoice_files(api, admin, invoice["id"])
    assert [D(rate) for rate in xpath_text(xml, f"{HEADER_TAX}/ram:RateApplicablePercent")] == [D(20), D(10)]
    assert "OSS (FR)" in text


async def test_outside_the_eu_is_not_subject_to_eu_vat(tax_api, admin):
    _, user_id = await customer(tax_api, admin, "us@example.com", US_PROFILE)
    invoice = await issued_manual(tax_api, admin, user_id, LINES)
    assert invoice["taxRule"] == "outside_eu" and invoice["buyerVatId"] is None
    assert figures(invoice) == [("standard", "O", 0, 0.0), ("reduced", "O", 0, 0.0)]
    xml, text = await invoice_files(tax_api, admin, invoice["id"])
    assert xpath_text(xml, f"{HEADER_TAX}/ram:CategoryCode") == ["O"]
    assert xpath_text(xml, f"{HEADER_TAX}/ram:ExemptionReasonCode") == ["VATEX-EU-O"]
    assert xpath_text(xml, SELLER_TAX_ID) == [] and xpath_text(xml, BUYER_TAX_ID) == []  # BR-O-02
    assert xpath_text(xml, "//ram:SellerTradeParty/ram:ID") == ["DE123456789"]  # BR-CO-26
    assert "Outside the EU" in text and "Not subject to EU VAT" in text


async def test_a_special_territory_is_outside_the_eu_vat_area_by_postal_code(tax_api, admin, env, make_api):
    env.update(BILLING_OSS_ENABLED="true")
    api = await make_api()
    canaries = {**PROFILE, "addressLine1": "Calle Mayor 1", "postalCode": "35001", "city": "Las Palmas",
                "country": "ES"}
    madrid = {**canaries, "postalCode": "28001", "city": "Madrid"}
    _, island = await customer(api, admin, "canarias@example.com", canaries)
    _, mainland = await customer(api, admin, "madrid@example.com", madrid)
    assert (await issued_manual(api, admin, island, LINES))["taxRule"] == "outside_eu"
    invoice = await issued_manual(api, admin, mainland, LINES)
    assert invoice["taxRule"] == "oss" and figures(invoice)[0] == ("standard", "S", 21, 21.0)


async def test_the_rate_in_force_on_the_invoice_date_applies(tax_api, admin, env, make_api, clock, tmp_path):
    env.update(BILLING_OSS_ENABLED="true")
    api = await make_api()
    estonia = {**PROFILE, "addressLine1": "Narva mnt 1", "postalCode": "10117", "city": "Tallinn", "country": "EE"}
    _, user_id = await customer(api, admin, "ee@example.com", estonia)
    clock.set(dt.datetime(2025, 6, 30, 23, 59, tzinfo=dt.timezone.utc))
    before = await issued_manual(api, admin, user_id, [line("Managed server", 1, 100)])
    clock.set(dt.datetime(2025, 7, 1, 0, 0, tzinfo=dt.timezone.utc))
    after = await issued_manual(api, admin, user_id, [line("Managed server", 1, 100)])
    assert (figures(before), figures(after)) == ([("standard", "S", 22, 22.0)], [("standard", "S", 24, 24.0)])
    assert after["taxSnapshot"]["ratesSource"].startswith("EE from 2025-07-01")

    # A draft made before the change is rated again when it is issued on the new rate's first day.
    clock.set(dt.datetime(2025, 6, 30, 12, 0, tzinfo=dt.timezone.utc))
    draft = (await api.post(f"{BASE}/invoices/manual", token=admin,
                            json={"userId": user_id, "lineItems": [line("Managed server", 1, 100)]})).json()
    assert figures(draft) == [("standard", "S", 22, 22.0)]
    clock.set(dt.datetime(2025, 7, 1, 8, 0, tzinfo=dt.timezone.utc))
    issued = (await api.post(f"{BASE}/invoices/{draft['id']}/issue", token=admin, json={})).json()
    assert figures(issued) == [("standard", "S", 24, 24.0)] and D(str(issued["totalGross"])) == D(124.00)

    # The operator's own table replaces the packaged one.
    table = tmp_path / "rates.json"
    table.write_text(json.dumps({"countries": {"EE": [{"from": "2025-07-01", "standard": "25", "reduced": "9"}]}}))
    env.update(BILLING_TAX_RATES_FILE=str(table))
    api = await make_api()
    assert figures(await issued_manual(api, admin, user_id, [line("Server", 1, 100)])) == \
        [("standard", "S", 25, 25.0)]
    # ... and the invoices issued before keep their rates.
    detail = (await api.get(f"{BASE}/invoices/{after['id']}", token=admin)).json()
    assert figures(detail) == [("standard", "S", 24, 24.0)]


async def test_an_admins_explicit_line_category_overrides_the_rule(tax_api, admin, vies):
    vies.register(FR_VAT_ID)
    _, user_id = await customer(tax_api, admin, "fr@example.com", {**FR_PROFILE, "vatId": FR_VAT_ID})
    invoice = await issued_manual(tax_api, admin, user_id, [
        line("Consulting", 1, 100),
        line("Event ticket in Berlin", 1, 50.00, vatCategoryCode="S"),
    ])
    assert invoice["taxRule"] == "reverse_charge"
    assert figures(invoice) == [("standard", "AE", 0, 0.0), ("standard", "S", 19, 9.5)]
    assert [(b["taxRate"], b["taxAmount"]) for b in invoice["taxBreakdown"]] == [(0, 0), (19, 9.5)]
    xml, _ = await invoice_files(tax_api, admin, invoice["id"])
    assert xpath_text(xml, f"{HEADER_TAX}/ram:CategoryCode") == ["AE", "S"]


async def test_tax_statistics_split_turnover_by_rule_country_and_rate(tax_api, admin, vies, env, make_api):
    env.update(BILLING_OSS_ENABLED="true")
    api = await make_api()
    vies.register(FR_VAT_ID)
    _, business = await customer(api, admin, "fr-b2b@example.com", {**FR_PROFILE, "vatId": FR_VAT_ID})
    _, consumer = await customer(api, admin, "fr-b2c@example.com", FR_PROFILE)
    _, domestic = await customer(api, admin, "de@example.com", PROFILE)
    for user_id in (business, consumer, consumer, domestic):
        await issued_manual(api, admin, user_id, LINES)
    response = await api.get(f"{BASE}/statistics/taxes", token=admin)
    assert response.status_code == 200, response.text
    stats = response.json()
    rows = {(i["taxRule"], i["country"], i["vatCategoryCode"], i["taxRate"]): (i["net"], i["tax"]) for i in stats["items"]}
    assert rows == {
        ("domestic", "DE", "S", 19): (100.0, 19.0), ("domestic", "DE", "S", 7): (50.0, 3.5),
        ("oss", "FR", "S", 20): (200.0, 40.0), ("oss", "FR", "S", 10): (100.0, 10.0),
        ("reverse_charge", "FR", "AE", 0): (150.0, 0.0),
    }
    assert (stats["netTotal"], stats["taxTotal"]) == (600.0, 72.5)
    refused = await api.get(f"{BASE}/statistics/taxes", token=admin, params={"from": "2026-02-01", "to": "2026-01-01"})
    assert refused.status_code == 400


async def test_the_credit_note_of_a_voided_invoice_keeps_its_rule(tax_api, admin, vies):
    vies.register(FR_VAT_ID)
    _, business = await customer(tax_api, admin, "fr@example.com", {**FR_PROFILE, "vatId": FR_VAT_ID})
    _, abroad = await customer(tax_api, admin, "us@example.com", US_PROFILE)
    for user_id, code in ((business, "AE"), (abroad, "O")):
        invoice = await issued_manual(tax_api, admin, user_id, LINES)
        response = await tax_api.post(f"{BASE}/invoices/{invoice['id']}/void", token=admin, json={"reason": "Duplicate"})
        assert response.status_code == 200, response.text
        response = await tax_api.get(f"{BASE}/invoices/{invoice['id']}/void-document/pdf", token=admin)
        assert response.status_code == 200, response.text
        xml = embedded_xml(response.content)
        assert schematron_failures(xml) == []
        assert xpath_text(xml, f"{HEADER_TAX}/ram:CategoryCode") == [code]
