"""The Stripe webhook: signatures verified on the raw body before anything else, each event applied once (also
under 1,000 concurrent deliveries), partial payments (D14), void invoices never changed (D14), the tenant
taken from the event's metadata, delayed payment methods, expiry, unknown event types."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import pytest

from models.invoicing import InvoiceAuditLog
from models.payments import PaymentSettlement, PaymentAttempt, PaymentWebhookEvent
from tests.fakes.stripe import make_event, sign_webhook
from tests.helpers import assert_error
from tests.invoicing.conftest import complete_profile
from tests.payments.conftest import (
    WEBHOOK_SECRET,
    deliver,
    invoice_row,
    issue_invoice,
    pay,
    rows,
    session_id_of,
    void_invoice,
)

URL = "/webhooks/payments/stripe"


async def _paid_event(api, customer, stripe, net: str = "100.00", **complete) -> tuple:
    invoice = await issue_invoice(customer, net)
    session_id = session_id_of((await pay(api, customer, invoice.id)).json()["checkoutUrl"])
    return invoice, stripe.complete_session(session_id, **complete)


async def _nothing_changed(invoice) -> None:
    stored = await invoice_row(invoice.id)
    assert (stored.status, stored.balance_due) == ("issued", Decimal("119.0000"))
    assert await rows(PaymentWebhookEvent) == []
    assert [a.status for a in await rows(PaymentAttempt)] == ["pending"]
    assert not [e for e in await rows(InvoiceAuditLog) if e.process.startswith("payment.webhook")]


def _signed(body: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> dict:
    return {"Content-Type": "application/json", "Stripe-Signature": sign_webhook(body, secret, timestamp)}


# --- verification ------------------------------------------------------------------------------------------


async def test_deliveries_without_a_valid_signature_change_nothing(billing_api, customer, stripe):
    api = billing_api
    invoice, event = await _paid_event(api, customer, stripe)
    body = json.dumps(event).encode()

    wrong_secret = await api.post(URL, content=body, headers=_signed(body, "whsec_someone_else"))
    stale = await api.post(URL, content=body, headers=_signed(body, timestamp=int(time.time()) - 301))
    tampered_body = body.replace(b'"amount_total": 11900', b'"amount_total": 99900')
    assert tampered_body != body
    tampered = await api.post(URL, content=tampered_body, headers=_signed(body))
    missing = await api.post(URL, content=body, headers={"Content-Type": "application/json"})
    garbage = await api.post(URL, content=body, headers={"Stripe-Signature": "t=abc,v1=xyz"})
    only_v0 = await api.post(URL, content=body, headers={
        "Stripe-Signature": _signed(body)["Stripe-Signature"].replace("v1=", "v0=")})
    for response in (wrong_secret, stale, tampered, missing, garbage, only_v0):
        assert_error(response, 400, "Webhook processing failed")
    await _nothing_changed(invoice)

    # Signed but not an event, or not JSON at all: 400 too.
    for raw in (b"not json", b"[]", b'{"id": "evt_1"}', "\u00e9t\u00e9".encode("latin-1")):
        assert_error(await api.post(URL, content=raw, headers={"Stripe-Signature": sign_webhook(
            raw.decode("latin-1"), WEBHOOK_SECRET)}), 400, "Webhook processing failed")
    await _nothing_changed(invoice)

    # A timestamp inside the tolerance, and several v1 signatures (secret rotation) of which one matches: accepted.
    recent = int(time.time()) - 290
    rotated = f"t={recent},v1={'0' * 64},{sign_webhook(body, WEBHOOK_SECRET, recent).split(',')[1]}"
    accepted = await api.post(URL, content=body, headers={"Stripe-Signature": rotated})
    assert accepted.status_code == 200, accepted.text
    assert (await invoice_row(invoice.id)).status == "paid"


async def test_the_raw_body_is_verified_byte_for_byte(billing_api, customer, stripe):
    """Whitespace and key order are part of the signed bytes: the handler must not re-serialise the JSON."""
    api = billing_api
    invoice, event = await _paid_event(api, customer, stripe)
    body = ("{\n  " + json.dumps(event, indent=4)[1:]).encode()
    response = await api.post(URL, content=body, headers=_signed(body))
    assert response.status_code == 200, response.text
    assert (await invoice_row(invoice.id)).status == "paid"


async def test_without_a_configured_secret_every_delivery_is_refused(env, billing_api, make_api, customer, stripe):
    invoice, event = await _paid_event(billing_api, customer, stripe)
    env.update(STRIPE_WEBHOOK_SECRET="")
    api = await make_api()
    assert_error(await deliver(api, event), 400, "Webhook processing failed")
    await _nothing_changed(invoice)


# --- exactly once ----------------------------------------------------------------------------------------------


async def test_a_duplicate_event_is_acknowledged_without_effect(billing_api, customer, stripe):
    api = billing_api
    invoice, event = await _paid_event(api, customer, stripe, "10.00")  # 11.90 gross
    for _ in range(3):
        response = await deliver(api, event)  # a fresh signature each time, as Stripe's retries have
        assert response.status_code == 200 and response.json() == {"received": True}
    stored = await invoice_row(invoice.id)
    assert (stored.status, stored.balance_due, stored.amount_paid) == ("paid", 0, Decimal("11.9000"))
    assert len(await rows(PaymentWebhookEvent)) == 1
    assert len(await rows(InvoiceAuditLog, InvoiceAuditLog.process == "payment.webhook")) == 1


async def test_concurrent_deliveries_of_one_event_make_one_payment(billing_api, customer, stripe, database_url):
    """1,000 concurrent deliveries on PostgreSQL (fewer on SQLite, whose single writer serialises them anyway):
    one event row, the invoice paid once, one audit entry."""
    api = billing_api
    invoice, event = await _paid_event(api, customer, stripe)
    total, batch = (1000, 200) if database_url.startswith("postgresql") else (100, 50)
    statuses = []
    for _ in range(total // batch):
        responses = await asyncio.gather(*(deliver(api, event) for _ in range(batch)))
        statuses += [r.status_code for r in responses]
    assert statuses == [200] * total
    stored = await invoice_row(invoice.id)
    assert (stored.status, stored.balance_due, stored.amount_paid) == ("paid", 0, Decimal("119.0000"))
    [record] = await rows(PaymentWebhookEvent)
    assert record.result == "processed"
    [entry] = await rows(InvoiceAuditLog, InvoiceAuditLog.process == "payment.webhook")
    assert (entry.status_before, entry.status_after) == ("issued", "paid")
    assert [a.status for a in await rows(PaymentAttempt)] == ["succeeded"]


async def test_concurrent_different_events_for_one_invoice_are_applied_one_after_the_other(
        billing_api, customer, stripe):
    api = billing_api
    invoice = await issue_invoice(customer, "100.00")
    session_id = session_id_of((await pay(api, customer, invoice.id)).json()["checkoutUrl"])
    session = dict(stripe.sessions[session_id], status="complete", payment_status="paid", amount_total=1000)
    # 5 × 10.00: five distinct payments (sessions), each with its own event
    events = [make_event("checkout.session.completed", dict(session, id=f"{session_id}_{i}")) for i in range(5)]
    responses = await asyncio.gather(*(deliver(api, e) for e in events))
    assert [r.status_code for r in responses] == [200] * 5
    stored = await invoice_row(invoice.id)
    assert (stored.status, stored.balance_due, stored.amount_paid) == ("partially_paid", Decimal("69.0000"),
                                                                      Decimal("50.0000"))
    assert len(await rows(InvoiceAuditLog, InvoiceAuditLog.process == "payment.webhook")) == 5


# --- what an event does ---------------------------------------------------------------------------------------


async def test_a_partial_amount_leaves_the_invoice_partially_paid(billing_api, customer, stripe):
    api = billing_api
    invoice = await issue_invoice(customer, "100.00")  # 119.00
    first_url = (await pay(api, customer, invoice.id)).json()["checkoutUrl"]
    event = stripe.complete_session(session_id_of(first_url))
    event["data"]["object"]["amount_total"] = 5000  # 50.00 arrived (e.g. a discount applied at Stripe)
    assert (await deliver(api, event)).status_code == 200

    detail = (await api.get(f"/invoices/ref/{invoice.id}", token=customer)).json()
    assert (detail["status"], detail["balanceDue"], detail["canPay"]) == ("partially_paid", 69, True)
    [entry] = await rows(InvoiceAuditLog, InvoiceAuditLog.process == "payment.webhook")
    assert (entry.status_before, entry.status_after, entry.message) == ("issued", "partially_paid",
                                                                        "Partial payment received")
    assert entry.context["balanceDue"] == "69.0000"

    # The rest: a new checkout for the remaining 69.00, then paid.
    second_url = (await pay(api, customer, invoice.id)).json()["checkoutUrl"]
    assert second_url != first_url
    [_, second_call] = [r for r in stripe.requests if r["path"] == "/v1/checkout/sessions"]
    assert second_call["params"]["line_items"][0]["price_data"]["unit_amount"] == "6900"
    assert (await deliver(api, stripe.complete_session(session_id_of(second_url)))).status_code == 200
    stored = await invoice_row(invoice.id)
    assert (stored.status, stored.balance_due, stored.amount_paid) == ("paid", 0, Decimal("119.0000"))


async def test_a_void_invoice_is_never_changed(billing_api, customer, stripe):
    api = billing_api
    invoice, event = await _paid_event(api, customer, stripe)
    await void_invoice(invoice.id)
    response = await deliver(api, event)
    assert response.status_code == 200
    stored = await invoice_row(invoice.id)
    assert (stored.status, stored.balance_due) == ("void", 0)
    [entry] = await rows(InvoiceAuditLog, InvoiceAuditLog.process == "payment_received_on_void")
    assert (entry.level, entry.status_before, entry.status_after) == ("warn", "void", "void")
    assert entry.context["amount"] == "119.00" and entry.context["externalId"] == event["data"]["object"]["id"]
    assert not await rows(InvoiceAuditLog, InvoiceAuditLog.process == "payment.webhook")
    [attempt] = await rows(PaymentAttempt)
    assert attempt.status == "succeeded"  # the money did arrive: the attempt says so, the invoice does not


async def test_a_second_payment_of_a_paid_invoice_is_only_recorded(billing_api, customer, stripe):
    api = billing_api
    invoice, event = await _paid_event(api, customer, stripe)
    assert (await deliver(api, event)).status_code == 200
    other = make_event("checkout.session.completed",  # another session's money
                       dict(event["data"]["object"], id="cs_test_another_session", payment_intent="pi_another"))
    assert (await deliver(api, other)).status_code == 200
    stored = await invoice_row(invoice.id)
    assert (stored.status, stored.amount_paid) == ("paid", Decimal("119.0000"))
    assert len(await rows(InvoiceAuditLog, InvoiceAuditLog.process == "payment_received_on_paid")) == 1


async def test_distinct_events_about_one_payment_settle_it_once(billing_api, customer, stripe):
    """`checkout.session.completed` and `checkout.session.async_payment_succeeded` (and any number of distinct
    events) for one Checkout Session are one payment: applied once, no "refund manually" entry."""
    api = billing_api
    invoice, completed = await _paid_event(api, customer, stripe)
    session_id = completed["data"]["object"]["id"]
    assert (await deliver(api, completed)).status_code == 200
    followers = [stripe.async_payment_succeeded(session_id)] + [
        make_event("checkout.session.completed", completed["data"]["object"]) for _ in range(5)]
    for event in followers:
        assert (await deliver(api, event)).status_code == 200
    stored = await invoice_row(invoice.id)
    assert (stored.status, stored.balance_due, stored.amount_paid) == ("paid", 0, Decimal("119.0000"))
    assert len(await rows(InvoiceAuditLog, InvoiceAuditLog.process == "payment.webhook")) == 1
    assert not [e for e in await rows(InvoiceAuditLog) if e.process.startswith("payment_received_on_")]
    [settlement] = await rows(PaymentSettlement)
    assert (settlement.payment_key, settlement.invoice_id, settlement.event_id) == (
        session_id, invoice.id, completed["id"])
    records = await rows(PaymentWebhookEvent)
    assert len(records) == 7 and sum("settled before" in (r.detail or "") for r in records) == 6


async def test_an_event_names_its_tenant_and_never_touches_another(billing_api, admin, customer, stripe):
    api = billing_api
    invoice, event = await _paid_event(api, customer, stripe)
    session = event["data"]["object"]
    for tenant in ("acme", "no-such-tenant", None):
        forged = dict(session, metadata={**session["metadata"], "tenantId": tenant} if tenant else
                      {k: v for k, v in session["metadata"].items() if k != "tenantId"})
        assert (await deliver(api, make_event("checkout.session.completed", forged))).status_code == 200
    assert (await invoice_row(invoice.id)).status == "issued"
    results = {(e.tenant_id, e.result) for e in await rows(PaymentWebhookEvent)}
    assert results == {("acme", "ignored"), ("default", "ignored")}

    # acme's own invoice is paid by its own event, in acme only.
    acme_admin = await api.admin_token("admin@acme.example", tenant="acme")
    acme_customer = await api.user_token(acme_admin, "buyer@acme.example", tenant="acme")
    await complete_profile(api, acme_customer, tenant="acme", email="buyer@acme.example")
    acme_invoice = await issue_invoice(acme_customer, "10.00", tenant="acme")
    url = (await pay(api, acme_customer, acme_invoice.id, tenant="acme")).json()["checkoutUrl"]
    [call] = [r for r in stripe.requests if r["path"] == "/v1/checkout/sessions"][-1:]
    assert call["params"]["metadata"]["tenantId"] == "acme"
    assert call["params"]["success_url"].startswith("https://billing.acme.test/invoices?payment=success&")
    assert (await deliver(api, stripe.complete_session(session_id_of(url)))).status_code == 200
    assert (await invoice_row(acme_invoice.id, tenant="acme")).status == "paid"
    assert (await invoice_row(invoice.id)).status == "issued"


async def test_delayed_payment_methods_settle_with_the_async_event(billing_api, customer, stripe):
    api = billing_api
    invoice, completed = await _paid_event(api, customer, stripe, payment_status="unpaid")  # SEPA debit
    assert (await deliver(api, completed)).status_code == 200
    assert (await invoice_row(invoice.id)).status == "issued"
    assert [a.status for a in await rows(PaymentAttempt)] == ["pending"]
    session_id = completed["data"]["object"]["id"]
    assert (await deliver(api, stripe.async_payment_succeeded(session_id))).status_code == 200
    stored = await invoice_row(invoice.id)
    assert (stored.status, stored.balance_due) == ("paid", 0)
    assert [a.status for a in await rows(PaymentAttempt)] == ["succeeded"]


async def test_a_failed_delayed_payment_leaves_the_invoice_open(billing_api, customer, stripe):
    api = billing_api
    invoice, completed = await _paid_event(api, customer, stripe, payment_status="unpaid")
    failed = make_event("checkout.session.async_payment_failed", completed["data"]["object"])
    assert (await deliver(api, completed)).status_code == 200
    assert (await deliver(api, failed)).status_code == 200
    stored = await invoice_row(invoice.id)
    assert (stored.status, stored.balance_due) == ("issued", Decimal("119.0000"))
    [attempt] = await rows(PaymentAttempt)
    assert attempt.status == "failed"
    [entry] = await rows(InvoiceAuditLog, InvoiceAuditLog.process == "payment.failed")
    assert entry.level == "warn"
    # The customer can try again: a new checkout.
    assert (await pay(api, customer, invoice.id)).status_code == 200
    assert len(stripe.sessions) == 2


async def test_unknown_and_unrelated_events_are_acknowledged(billing_api, customer, stripe):
    api = billing_api
    invoice, _ = await _paid_event(api, customer, stripe)
    customer_event = make_event("customer.created", {"id": "cus_1", "object": "customer"})
    no_invoice = make_event("checkout.session.completed", {"id": "cs_x", "object": "checkout.session",
                                                           "payment_status": "paid", "amount_total": 100,
                                                           "currency": "eur", "metadata": {"tenantId": "default"}})
    unknown_invoice = make_event("checkout.session.completed", {
        "id": "cs_y", "object": "checkout.session", "payment_status": "paid", "amount_total": 100, "currency": "eur",
        "client_reference_id": "5d6c3f5e-0f1e-4d8a-9a55-3f1a2b3c4d5e", "metadata": {"tenantId": "default"}})
    for event in (customer_event, no_invoice, unknown_invoice):
        response = await deliver(api, event)
        assert response.status_code == 200 and response.json() == {"received": True}
    assert {e.result for e in await rows(PaymentWebhookEvent)} == {"ignored"}
    assert len(await rows(PaymentWebhookEvent)) == 3
    assert (await invoice_row(invoice.id)).status == "issued"


async def test_a_payment_in_another_currency_is_not_applied(billing_api, customer, stripe):
    api = billing_api
    invoice, event = await _paid_event(api, customer, stripe)
    event["data"]["object"]["currency"] = "usd"
    assert (await deliver(api, event)).status_code == 200
    assert (await invoice_row(invoice.id)).status == "issued"
    assert len(await rows(InvoiceAuditLog, InvoiceAuditLog.process == "payment_currency_mismatch")) == 1


@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_only_post_is_routed(billing_api, method):
    response = await billing_api.request(method, URL)
    assert_error(response, 405)
