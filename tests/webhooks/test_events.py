"""Every event of the catalogue arrives at a real receiver, signed and verifiable, with a body that follows
the spec's `WebhookEvent` schema; raised by the real changes over HTTP (and the jobs that make them)."""

from __future__ import annotations

import datetime as dt
import functools
import uuid

import jsonschema
import yaml

from decabill import db
from decabill.invoicing import overdue
from decabill.subscriptions.repository import SubscriptionRepository
from decabill.tenancy import bound_tenant
from decabill.webhooks import service as webhooks
from decabill.webhooks.events import NAMES
from spec import OPENAPI_PATH
from tests.admin.conftest import action
from tests.fakes.stripe import make_event
from tests.invoicing.conftest import ISSUER
from tests.payments.conftest import WEBHOOK_SECRET, deliver, issue_invoice, pay, session_id_of, void_invoice
from tests.subscriptions.conftest import complete_profile, hetzner_plan, manual_plan, order
from tests.webhooks.conftest import drain, register, verified_events


@functools.cache
def _event_validator() -> jsonschema.Draft4Validator:
    """The spec's `WebhookEvent` as a JSON schema (OpenAPI 3.0 `nullable` spelled out as a null type)."""
    spec = yaml.safe_load(OPENAPI_PATH.read_text())

    def plain(node):
        if isinstance(node, dict):
            node = {k: plain(v) for k, v in node.items() if k not in ("discriminator", "example")}
            if node.pop("nullable", False):
                return {"anyOf": [node, {"type": "null"}]}
            return node
        if isinstance(node, list):
            return [plain(v) for v in node]
        return node

    schemas = plain(spec["components"]["schemas"])
    root = {"components": {"schemas": schemas}, "$ref": "#/components/schemas/WebhookEvent"}
    return jsonschema.Draft4Validator(root)


async def test_every_event_type_arrives_signed_and_verifiable(env, make_api, fake_cloud, tmp_path):
    fake_cloud.reset()
    env.update(**ISSUER, BILLING_INVOICE_PDF_STORAGE_PATH=str(tmp_path / "invoices"),
               STRIPE_SECRET_KEY=fake_cloud.stripe_key, STRIPE_API_BASE=fake_cloud.stripe_url,
               STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_MAX_NETWORK_RETRIES="0",
               BILLING_FRONTEND_URL="https://billing.example.test",
               HETZNER_API_TOKEN=fake_cloud.hetzner_token, HETZNER_API_URL=fake_cloud.hetzner_url,
               CLOUDFLARE_API_TOKEN=fake_cloud.cf_token, CLOUDFLARE_ZONE_ID=fake_cloud.cf_zone_id,
               CLOUDFLARE_API_URL=fake_cloud.cf_url, DNS_BASE_DOMAIN="decabill.test", PROVIDER_MAX_RETRIES="0",
               PROVISIONING_IP_POLL_INTERVAL_MS="10", PROVISIONING_IP_POLL_ATTEMPTS="5",
               WEBHOOK_ALLOW_PRIVATE_TARGETS="true")
    api = await make_api()
    admin = await api.admin_token()
    endpoint = await register(api, admin, f"{fake_cloud.receiver_url}/all", list(NAMES))

    # customer.created
    customer = await api.user_token(admin, "customer@example.com")
    await complete_profile(api, customer)
    # subscription.created, subscription.canceled
    plan = await manual_plan(api, admin)
    subscription = await order(api, customer, plan["id"])
    assert (await api.post(f"/subscriptions/{subscription['id']}/cancel", token=customer)).status_code == 200
    # backorder.created, backorder.fulfilled (and the backorder's subscription.created)
    fake_cloud.hetzner.capacity[("cx22", "fsn1")] = False
    waiting = await order(api, customer, (await hetzner_plan(api, admin))["id"], autoBackorder=True)
    [backorder] = (await api.get("/backorders", token=customer)).json()
    fake_cloud.hetzner.capacity.clear()
    assert (await api.post(f"/backorders/{backorder['id']}/retry", token=customer)).status_code == 200
    # subscription.suspended, subscription.reactivated: what dunning (#22) will call
    with bound_tenant("default"):
        async with db.transaction() as session:
            row = await SubscriptionRepository(session).get(uuid.UUID(waiting["id"]))
            await webhooks.subscription_suspended(session, "default", row)
            await webhooks.subscription_reactivated(session, "default", row)
    # invoice.issued, invoice.partially_paid, payment.failed, invoice.paid, invoice.voided, invoice.overdue
    invoice = await issue_invoice(customer, "100.00")
    checkout = (await pay(api, customer, invoice.id)).json()["checkoutUrl"]
    partial = fake_cloud.stripe.complete_session(session_id_of(checkout))
    partial["data"]["object"]["amount_total"] = 5000
    assert (await deliver(api, partial)).status_code == 200
    second = await issue_invoice(customer, "10.00")
    unpaid = fake_cloud.stripe.complete_session(session_id_of((await pay(api, customer, second.id)).json()["checkoutUrl"]),
                                                payment_status="unpaid")
    assert (await deliver(api, unpaid)).status_code == 200
    assert (await deliver(api, make_event("checkout.session.async_payment_failed", unpaid["data"]["object"]))).status_code == 200
    await action(api, admin, str(second.id), "mark-paid")
    await void_invoice((await issue_invoice(customer, "20.00")).id)
    late = await issue_invoice(customer, "30.00")
    with bound_tenant("default"):
        assert await overdue.mark_overdue(late.id, now=db.utcnow() + dt.timedelta(days=60)) == "overdue"

    await drain()
    events = verified_events(fake_cloud.receiver, endpoint["secret"])
    assert set(NAMES) <= {e["type"] for e in events}
    for event in events:
        _event_validator().validate(event)
        assert event["tenant"] == "default"
    by_type = {e["type"]: e for e in events}
    assert by_type["invoice.partially_paid"]["data"]["id"] == str(invoice.id)
    assert by_type["payment.failed"]["data"]["id"] == str(second.id)
    assert by_type["invoice.paid"]["data"]["id"] == str(second.id)
    assert by_type["invoice.overdue"]["data"]["id"] == str(late.id)
    assert by_type["backorder.fulfilled"]["data"]["status"] == "fulfilled"
    assert by_type["subscription.canceled"]["data"]["status"] == "pending_cancel"
    assert len({e["id"] for e in events}) == len(events)  # one delivery per event
