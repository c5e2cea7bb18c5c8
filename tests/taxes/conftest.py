"""Fixtures of the EU VAT tests: the billing app (seller in Germany, DE123456789) talking to the VIES fake,
customers in other countries, and helpers that issue a manual invoice through the admin API and read back its
detail, PDF and e-invoice XML."""

from __future__ import annotations

import pytest

from tests.invoicing.conftest import ISSUER, clock, embedded_xml, pdf_text, schematron_failures  # noqa: F401
from tests.subscriptions.conftest import PROFILE

BASE = "/admin/billing"
FR_VAT_ID = "FR40303265045"  # check digits valid for France (python-stdnum)
FR_PROFILE = {**PROFILE, "company": "Exemple SARL", "addressLine1": "1 Rue de la Paix", "postalCode": "75002",
              "city": "Paris", "country": "FR"}
US_PROFILE = {**PROFILE, "addressLine1": "1 Market St", "postalCode": "94105", "city": "San Francisco",
              "country": "US"}


@pytest.fixture
async def tax_api(env, make_api, tmp_path, fake_cloud):
    fake_cloud.vies.reset()
    env.update(**ISSUER, BILLING_INVOICE_PDF_STORAGE_PATH=str(tmp_path / "invoices"), VIES_API_URL=fake_cloud.vies_url)
    return await make_api()


@pytest.fixture
def vies(fake_cloud):
    return fake_cloud.vies


@pytest.fixture
async def admin(tax_api) -> str:
    return await tax_api.admin_token()


async def customer(api, admin: str, email: str, profile: dict) -> tuple[str, str]:
    """(token, user id) of a new customer with `profile`."""
    token = await api.user_token(admin, email)
    response = await api.post("/customer-profile", token=token, json={**profile, "email": email})
    assert response.status_code == 200, response.text
    return token, response.json()["userId"]


def line(description: str, quantity, price, **extra) -> dict:
    return {"description": description, "quantity": quantity, "unitPriceNet": price, **extra}


async def issued_manual(api, admin: str, user_id: str, lines: list[dict]) -> dict:
    """A manual invoice created and issued through the admin API; its detail as the admin sees it."""
    response = await api.post(f"{BASE}/invoices/manual", token=admin, json={"userId": user_id, "lineItems": lines})
    assert response.status_code in (200, 201), response.text
    invoice_id = response.json()["id"]
    response = await api.post(f"{BASE}/invoices/{invoice_id}/issue", token=admin, json={})
    assert response.status_code == 200, response.text
    return response.json()


async def invoice_files(api, admin: str, invoice_id: str) -> tuple[bytes, str]:
    """The invoice's e-invoice XML (checked against the XSD and the EN 16931 schematron) and its PDF text."""
    response = await api.get(f"{BASE}/invoices/{invoice_id}/pdf", token=admin)
    assert response.status_code == 200, response.text
    xml = embedded_xml(response.content)
    assert schematron_failures(xml) == []
    return xml, pdf_text(response.content)
