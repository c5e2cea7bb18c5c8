"""Fixtures of the payment tests: the app wired to the fake Stripe API (`tests/fakes/stripe.py`) with a test
webhook secret, the invoicing fixtures (seller configured, an admin, a customer with a complete profile), and
small helpers: issue an invoice through the invoicing service, pay it over HTTP, deliver signed events."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from decabill import db
from decabill.invoicing import invoices, states
from decabill.invoicing.invoices import LineInput
from decabill.tenancy import bound_tenant
from models.invoicing import Invoice
from tests.fakes.stripe import webhook_request
from tests.helpers import rows
from tests.invoicing.conftest import ISSUER, admin, customer, user_id  # noqa: F401 - fixtures

WEBHOOK_SECRET = "whsec_test_decabill_0123456789"
FRONTEND = "https://billing.example.test"
ACME_FRONTEND = "https://billing.acme.test"


@pytest.fixture
async def billing_api(env, make_api, tmp_path, fake_cloud):
    """The invoicing fixtures' app, plus Stripe pointed at the local fake (fresh fake state)."""
    fake_cloud.reset()
    env.update(**ISSUER, BILLING_INVOICE_PDF_STORAGE_PATH=str(tmp_path / "invoices"),
               STRIPE_SECRET_KEY=fake_cloud.stripe_key, STRIPE_API_BASE=fake_cloud.stripe_url,
               STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_MAX_NETWORK_RETRIES="0",
               BILLING_FRONTEND_URL=FRONTEND, TENANT_FRONTEND_URLS=f"acme={ACME_FRONTEND}/, broken-entry")
    return await make_api()


@pytest.fixture
def stripe(fake_cloud):
    return fake_cloud.stripe


async def issue_invoice(token: str, net: str = "100.00", *, tenant: str = "default",
                        subscription_id: str | None = None, currency: str | None = None) -> Invoice:
    """An issued invoice of the token's user with one standard-rated line (gross = net × 1.19), made by the
    invoicing service exactly as a billing run makes one."""
    sub = uuid.UUID(subscription_id) if subscription_id else None
    with bound_tenant(tenant):
        async with db.transaction() as session:
            invoice = await invoices.create_draft(
                session, user_id=user_id(token), subscription_id=sub, currency=currency, actor=states.SYSTEM,
                lines=[LineInput(description="Support hours", unit_price_net=Decimal(net), subscription_id=sub)])
            await invoices.issue(session, invoice, actor=states.SYSTEM)
    return invoice


async def draft_invoice(token: str, net: str = "100.00") -> Invoice:
    with bound_tenant("default"):
        async with db.transaction() as session:
            return await invoices.create_draft(
                session, user_id=user_id(token), actor=states.SYSTEM,
                lines=[LineInput(description="Support hours", unit_price_net=Decimal(net))])


async def void_invoice(invoice_id, tenant: str = "default") -> None:
    with bound_tenant(tenant):
        async with db.transaction() as session:
            await invoices.void(session, await invoices.locked(session, invoice_id), actor=states.SYSTEM)


async def pay(api, token: str, invoice_id, *, tenant: str | None = None, subscription_id: str | None = None,
              expect: int = 200):
    path = f"/invoices/{subscription_id}/ref/{invoice_id}/pay" if subscription_id else f"/invoices/ref/{invoice_id}/pay"
    response = await api.post(path, token=token, tenant=tenant)
    assert response.status_code == expect, response.text
    return response


def session_id_of(checkout_url: str) -> str:
    return checkout_url.rsplit("/", 1)[-1]


async def deliver(api, event: dict, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None):
    body, headers = webhook_request(event, secret, timestamp)
    return await api.post("/webhooks/payments/stripe", content=body, headers=headers)


async def invoice_row(invoice_id, tenant: str = "default") -> Invoice:
    [found] = await rows(Invoice, Invoice.id == invoice_id, tenant=tenant)
    return found
