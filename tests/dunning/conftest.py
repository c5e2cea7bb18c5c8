"""Fixtures of the dunning tests: the app wired to the fake Hetzner, DigitalOcean, Cloudflare and Stripe, a
configured seller, an admin, a customer with servers at both providers, a controllable clock, and helpers
that issue invoices and run the dunning unit as the job does (tenant bound, "now" from the clock)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from decabill import db
from decabill.dunning import service as dunning
from decabill.invoicing import invoices, states
from decabill.invoicing.invoices import LineInput
from decabill.jobs import queue
from decabill.tenancy import bound_tenant
from models.invoicing import Invoice
from tests.helpers import rows  # noqa: F401 - the tests of this area import it from here
from tests.invoicing.conftest import ISSUER, Clock, user_id
from tests.payments.conftest import FRONTEND, WEBHOOK_SECRET
from tests.subscriptions.conftest import complete_profile, digitalocean_plan, hetzner_plan, only_item, order

CUSTOMER_EMAIL = "customer@example.com"
POLICY = {"enabled": True, "billWhileSuspended": True,
          "steps": [{"days": 3, "action": "remind"}, {"days": 14, "action": "suspend"},
                    {"days": 45, "action": "terminate"}]}


@pytest.fixture(autouse=True)
def fresh_broker():
    queue.reset_broker()
    yield
    queue.reset_broker()


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
async def api(env, make_api, fake_cloud, tmp_path):
    fake_cloud.reset()
    env.update(
        **ISSUER, BILLING_INVOICE_PDF_STORAGE_PATH=str(tmp_path / "invoices"),
        HETZNER_API_TOKEN=fake_cloud.hetzner_token, HETZNER_API_URL=fake_cloud.hetzner_url,
        DIGITALOCEAN_API_TOKEN=fake_cloud.do_token, DIGITALOCEAN_API_URL=fake_cloud.do_url,
        CLOUDFLARE_API_TOKEN=fake_cloud.cf_token, CLOUDFLARE_ZONE_ID=fake_cloud.cf_zone_id,
        CLOUDFLARE_API_URL=fake_cloud.cf_url, DNS_BASE_DOMAIN="decabill.test",
        PROVIDER_MAX_RETRIES="0", PROVISIONING_IP_POLL_INTERVAL_MS="10", PROVISIONING_IP_POLL_ATTEMPTS="5",
        STRIPE_SECRET_KEY=fake_cloud.stripe_key, STRIPE_API_BASE=fake_cloud.stripe_url,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_MAX_NETWORK_RETRIES="0", BILLING_FRONTEND_URL=FRONTEND,
    )
    return await make_api()


@pytest.fixture
async def admin(api) -> str:
    return await api.admin_token()


@pytest.fixture
async def customer(api, admin) -> str:
    token = await api.user_token(admin, CUSTOMER_EMAIL)
    await complete_profile(api, token, email=CUSTOMER_EMAIL)
    return token


@pytest.fixture
async def servers(api, admin, customer) -> dict:
    """The customer's two subscriptions: one server at Hetzner, one droplet at DigitalOcean."""
    hetzner = await order(api, customer, (await hetzner_plan(api, admin))["id"])
    ocean = await order(api, customer, (await digitalocean_plan(api, admin))["id"],
                        requestedConfig={"authenticationMethod": "users"})
    return {"hetzner": hetzner, "digitalocean": ocean,
            "hetzner_item": await only_item(api, customer, hetzner["id"]),
            "digitalocean_item": await only_item(api, customer, ocean["id"])}


async def set_policy(api, admin: str, policy: dict = POLICY) -> dict:
    response = await api.put("/admin/billing/dunning-policy", token=admin, json=policy)
    assert response.status_code == 200, response.text
    return response.json()


async def issue_invoice(token: str, net: str = "100.00", subscription_id: str | None = None) -> Invoice:
    sub = uuid.UUID(subscription_id) if subscription_id else None
    with bound_tenant("default"):
        async with db.transaction() as session:
            invoice = await invoices.create_draft(
                session, user_id=user_id(token), subscription_id=sub, actor=states.SYSTEM,
                lines=[LineInput(description="Hosting", unit_price_net=Decimal(net), subscription_id=sub)])
            await invoices.issue(session, invoice, actor=states.SYSTEM)
    return invoice


def days_after(invoice: Invoice, days: int) -> dt.datetime:
    return dt.datetime.combine(invoice.due_date + dt.timedelta(days=days), dt.time(9), dt.timezone.utc)


async def run(token: str):
    with bound_tenant("default"):
        return await dunning.run_customer(user_id(token))


def hetzner_status(fake_cloud) -> str:
    [server] = fake_cloud.hetzner.servers.values()
    return server["status"]


def droplet_status(fake_cloud) -> str:
    [droplet] = fake_cloud.digitalocean.droplets.values()
    return droplet["status"]


def uid(value) -> uuid.UUID:
    return uuid.UUID(str(value))
