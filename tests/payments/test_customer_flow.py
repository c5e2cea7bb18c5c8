"""The issue's "done when" through HTTP: invoice issued → pay → checkout URL from the fake Stripe → signed
webhook → invoice paid, balance 0, audit entries; and what the fake Stripe received, on the wire."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

from models.customers import CustomerProfile
from models.invoicing import InvoiceAuditLog
from models.payments import PaymentAttempt, PaymentWebhookEvent
from tests.fakes.stripe import API_VERSION
from tests.invoicing.conftest import user_id
from tests.payments.conftest import FRONTEND, deliver, invoice_row, issue_invoice, pay, rows, session_id_of


def _posts(stripe, path: str) -> list[dict]:
    return [r for r in stripe.requests if r["method"] == "POST" and r["path"] == path]


async def test_pay_an_issued_invoice_end_to_end(billing_api, customer, stripe):
    api = billing_api
    invoice = await issue_invoice(customer, "100.00")  # 119.00 gross
    before = (await api.get(f"/invoices/ref/{invoice.id}", token=customer)).json()
    assert before["status"] == "issued" and before["balanceDue"] == 119 and before["canPay"]

    checkout_url = (await pay(api, customer, invoice.id)).json()["checkoutUrl"]
    session_id = session_id_of(checkout_url)
    assert checkout_url == stripe.sessions[session_id]["url"]

    # The customer was created at Stripe once, from the profile, and its id stored on the profile (D15).
    [customer_call] = _posts(stripe, "/v1/customers")
    [profile] = await rows(CustomerProfile)
    assert profile.stripe_customer_id in stripe.customers
    assert customer_call["params"]["email"] == "customer@example.com"
    assert customer_call["params"]["name"] == "Ada Lovelace"
    assert customer_call["params"]["metadata"] == {"tenantId": "default", "userId": str(user_id(customer)),
                                                   "customerProfileId": str(profile.id)}
    assert customer_call["idempotency_key"].startswith(f"decabill-customer-{profile.id}-")
    assert (await api.get("/customer-profile", token=customer)).json()["stripeCustomerId"] == profile.stripe_customer_id

    # The Checkout Session as Stripe received it: form-encoded, amount in cents from the exact decimal.
    [call] = _posts(stripe, "/v1/checkout/sessions")
    [attempt] = await rows(PaymentAttempt)
    assert call["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert call["headers"]["stripe-version"] == API_VERSION
    assert call["headers"]["authorization"] == "Bearer sk_test_fake_decabill"
    assert call["idempotency_key"] == attempt.idempotency_key == f"decabill-checkout-{attempt.id}"
    number = invoice.invoice_number
    urls = f"subscriptionId=&invoiceRefId={invoice.id}"
    assert call["params"] == {
        "mode": "payment",
        "line_items": [{"quantity": "1", "price_data": {"currency": "eur", "unit_amount": "11900",
                                                         "product_data": {"name": f"Invoice {number}"}}}],
        "client_reference_id": str(invoice.id),
        "metadata": {"invoiceId": str(invoice.id), "userId": str(user_id(customer)), "invoiceNumber": number,
                     "tenantId": "default", "paymentAttemptId": str(attempt.id)},
        "success_url": f"{FRONTEND}/invoices?payment=success&{urls}",
        "cancel_url": f"{FRONTEND}/invoices?payment=cancel&{urls}",
        "customer": profile.stripe_customer_id,
    }
    assert (attempt.status, attempt.external_id, attempt.amount, attempt.currency) == (
        "pending", session_id, Decimal("119.0000"), "EUR")
    assert attempt.checkout_url == checkout_url and attempt.expires_at > dt.datetime.now(dt.timezone.utc)
    assert (await invoice_row(invoice.id)).external_payment_id == session_id

    # The customer pays; Stripe delivers the signed event.
    delivered = await deliver(api, stripe.complete_session(session_id))
    assert delivered.status_code == 200, delivered.text
    assert delivered.json() == {"received": True}

    after = (await api.get(f"/invoices/ref/{invoice.id}", token=customer)).json()
    assert (after["status"], after["balanceDue"], after["canPay"]) == ("paid", 0, False)
    [attempt] = await rows(PaymentAttempt)
    assert (attempt.status, attempt.amount_paid) == ("succeeded", Decimal("119.0000"))
    [event] = await rows(PaymentWebhookEvent)
    assert (event.result, event.invoice_id, event.attempt_id, event.tenant_id) == (
        "processed", invoice.id, attempt.id, "default")
    audit = sorted(await rows(InvoiceAuditLog, InvoiceAuditLog.invoice_id == invoice.id), key=lambda e: e.created_at)
    assert [(e.process, e.status_before, e.status_after, e.actor_type) for e in audit] == [
        ("invoice.create", None, "draft", "system"), ("invoice.issue", "draft", "issued", "system"),
        ("payment.init", None, None, "user"), ("payment.webhook", "issued", "paid", "system")]
    assert audit[2].context["externalId"] == session_id and audit[2].actor_user_id == user_id(customer)
    assert audit[3].message == "Invoice marked paid"
    assert audit[3].context["externalId"] == session_id and audit[3].context["eventId"] == event.event_id
    assert audit[3].context["amount"] == "119.00" and audit[3].context["previousBalanceDue"] == "119.0000"

    # Paid: nothing to pay any more.
    again = await pay(api, customer, invoice.id, expect=400)
    assert again.json()["message"] == "Invoice is not payable"


async def test_a_retried_pay_request_makes_no_second_session(billing_api, customer, stripe):
    api = billing_api
    invoice = await issue_invoice(customer)
    first = (await pay(api, customer, invoice.id)).json()["checkoutUrl"]
    second = (await pay(api, customer, invoice.id)).json()["checkoutUrl"]
    assert first == second
    assert len(_posts(stripe, "/v1/checkout/sessions")) == 1 and len(stripe.sessions) == 1
    assert len(_posts(stripe, "/v1/customers")) == 1
    assert len(await rows(PaymentAttempt)) == 1
    assert [e.process for e in await rows(InvoiceAuditLog, InvoiceAuditLog.process == "payment.init")] == ["payment.init"]


async def test_concurrent_pay_requests_make_one_session(billing_api, customer, stripe):
    api = billing_api
    invoice = await issue_invoice(customer)
    responses = await asyncio.gather(*(pay(api, customer, invoice.id) for _ in range(5)))
    assert len({r.json()["checkoutUrl"] for r in responses}) == 1
    assert len(stripe.sessions) == 1 and len(stripe.customers) == 1
    assert len(await rows(PaymentAttempt)) == 1


async def test_a_lost_answer_is_retried_with_the_same_idempotency_key(billing_api, customer, stripe):
    """Stripe fails (or its answer is lost): 503; the retry asks again for the SAME attempt with the same key."""
    api = billing_api
    invoice = await issue_invoice(customer)
    stripe.fail_next(500, path="/v1/checkout/sessions")
    failed = await pay(api, customer, invoice.id, expect=503)
    assert failed.json()["message"] == "Payment provider is temporarily unavailable, please try again"
    checkout_url = (await pay(api, customer, invoice.id)).json()["checkoutUrl"]
    first, second = _posts(stripe, "/v1/checkout/sessions")
    assert first["idempotency_key"] == second["idempotency_key"] and first["params"] == second["params"]
    [attempt] = await rows(PaymentAttempt)
    assert attempt.external_id == session_id_of(checkout_url) and len(stripe.sessions) == 1

    # The same key replayed by Stripe (a response lost after Stripe made the session) gives the same session.
    await _forget_session(attempt.id)
    assert (await pay(api, customer, invoice.id)).json()["checkoutUrl"] == checkout_url
    assert _posts(stripe, "/v1/checkout/sessions")[-1]["idempotency_key"] == attempt.idempotency_key
    assert len(stripe.sessions) == 1


async def _forget_session(attempt_id) -> None:
    from decabill import db
    from decabill.tenancy import bound_tenant

    with bound_tenant("default"):
        async with db.transaction() as session:
            attempt = await session.get(PaymentAttempt, attempt_id)
            attempt.external_id = attempt.checkout_url = attempt.expires_at = None


async def test_an_expired_session_is_not_handed_out_again(billing_api, customer, stripe):
    api = billing_api
    invoice = await issue_invoice(customer)
    first = (await pay(api, customer, invoice.id)).json()["checkoutUrl"]
    assert (await deliver(api, stripe.expire_session(session_id_of(first)))).status_code == 200
    [attempt] = await rows(PaymentAttempt)
    assert attempt.status == "canceled"
    assert (await invoice_row(invoice.id)).status == "issued"
    second = (await pay(api, customer, invoice.id)).json()["checkoutUrl"]
    assert second != first and len(stripe.sessions) == 2


async def test_the_stored_customer_is_reused_and_replaced_when_stripe_lost_it(billing_api, customer, stripe):
    api = billing_api
    one, two, three = [await issue_invoice(customer, net) for net in ("10.00", "20.00", "30.00")]
    await pay(api, customer, one.id)
    await pay(api, customer, two.id)
    assert len(_posts(stripe, "/v1/customers")) == 1
    [profile] = await rows(CustomerProfile)
    stored = profile.stripe_customer_id
    assert [c["params"]["customer"] for c in _posts(stripe, "/v1/checkout/sessions")] == [stored, stored]

    stripe.customers.clear()  # deleted in the Stripe dashboard
    await pay(api, customer, three.id)
    [profile] = await rows(CustomerProfile)
    assert profile.stripe_customer_id != stored and profile.stripe_customer_id in stripe.customers
    assert _posts(stripe, "/v1/checkout/sessions")[-1]["params"]["customer"] == profile.stripe_customer_id
