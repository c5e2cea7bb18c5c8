"""Who may pay what (behavior.md §6.2, D13): an end user, only their own invoice in this tenant (and of the
named subscription), only issued / partially paid / overdue invoices with money owed; Stripe configured."""

from __future__ import annotations

import uuid

from models.payments import PaymentAttempt
from tests.helpers import assert_error
from tests.invoicing.conftest import complete_profile, manual_plan, order
from tests.payments.conftest import FRONTEND, draft_invoice, issue_invoice, pay, rows, void_invoice


async def test_only_open_invoices_with_a_balance_can_be_paid(billing_api, customer, stripe):
    api = billing_api
    draft = await draft_invoice(customer)
    assert_error(await pay(api, customer, draft.id, expect=400), 400, "Invoice is not payable")  # D13
    void = await issue_invoice(customer)
    await void_invoice(void.id)
    assert_error(await pay(api, customer, void.id, expect=400), 400, "Invoice is not payable")
    free = await issue_invoice(customer, "0.00")
    assert_error(await pay(api, customer, free.id, expect=400), 400, "Nothing to pay")
    assert stripe.requests == [] and await rows(PaymentAttempt) == []


async def test_an_invoice_of_someone_else_is_not_found(billing_api, admin, customer, stripe):
    api = billing_api
    invoice = await issue_invoice(customer)
    other = await api.user_token(admin, "other@example.com")
    await complete_profile(api, other, email="other@example.com")
    for token in (other, admin):  # admins included: only the owner pays
        assert_error(await pay(api, token, invoice.id, expect=400), 400, "Invoice not found")
    assert_error(await pay(api, customer, uuid.uuid4(), expect=400), 400, "Invoice not found")

    # Another tenant: the same invoice id does not exist there.
    acme_admin = await api.admin_token("admin@acme.example", tenant="acme")
    acme_user = await api.user_token(acme_admin, "user@acme.example", tenant="acme")
    assert_error(await pay(api, acme_user, invoice.id, tenant="acme", expect=400), 400, "Invoice not found")
    assert stripe.requests == []


async def test_the_api_key_has_no_user_to_pay_for(env, billing_api, customer, make_api):
    invoice = await issue_invoice(customer)
    env.update(AUTHENTICATION_METHOD="api-key", STATIC_API_KEY="s3cr3t-key")
    keyed = await make_api()
    response = await keyed.post(f"/invoices/ref/{invoice.id}/pay", headers={"Authorization": "Bearer s3cr3t-key"})
    assert_error(response, 400, "User not authenticated")


async def test_the_subscription_scoped_route(billing_api, admin, customer, stripe):
    api = billing_api
    plan = await manual_plan(api, admin, basePrice="30.00")
    subscription = await order(api, customer, plan["id"])
    sid = subscription["id"]
    invoice = await issue_invoice(customer, subscription_id=sid)
    loose = await issue_invoice(customer)  # an invoice of no subscription

    unknown = uuid.uuid4()
    assert_error(await pay(api, customer, invoice.id, subscription_id=str(unknown), expect=404), 404,
                 f"Subscription with ID {unknown} not found")
    assert_error(await pay(api, customer, loose.id, subscription_id=sid, expect=400), 400, "Invoice not found")
    other = await api.user_token(admin, "other@example.com")
    assert_error(await pay(api, other, invoice.id, subscription_id=sid, expect=404), 404)  # not theirs

    checkout = (await pay(api, customer, invoice.id, subscription_id=sid)).json()["checkoutUrl"]
    [call] = [r for r in stripe.requests if r["path"] == "/v1/checkout/sessions"]
    assert call["params"]["metadata"]["subscriptionId"] == sid
    assert call["params"]["success_url"] == (
        f"{FRONTEND}/invoices?payment=success&subscriptionId={sid}&invoiceRefId={invoice.id}")
    # The ref route names the invoice's subscription too; its return URLs are the same, so is its checkout.
    assert (await pay(api, customer, invoice.id)).json()["checkoutUrl"] == checkout


async def test_stripe_must_be_configured(env, billing_api, customer, make_api, stripe):
    invoice = await issue_invoice(customer)
    env.update(STRIPE_SECRET_KEY="")
    api = await make_api()
    assert_error(await pay(api, customer, invoice.id, expect=400), 400, "Stripe is not configured: set STRIPE_SECRET_KEY")

    env.update(STRIPE_SECRET_KEY="sk_test_revoked_key")
    stripe.api_key = "sk_test_the_real_one"
    api = await make_api()
    assert_error(await pay(api, customer, invoice.id, expect=400), 400,
                 "Stripe rejected the configured STRIPE_SECRET_KEY")


async def test_stripe_refusing_the_checkout_is_a_400_and_marks_the_attempt_failed(billing_api, customer, stripe):
    api = billing_api
    invoice = await issue_invoice(customer)
    stripe.fail_next(400, "invalid_request_error", "Amount must be at least 0.50 eur", path="/v1/checkout/sessions")
    assert_error(await pay(api, customer, invoice.id, expect=400), 400,
                 "Failed to create checkout session: Amount must be at least 0.50 eur")
    [attempt] = await rows(PaymentAttempt)
    assert (attempt.status, attempt.failure_reason) == (
        "failed", "Failed to create checkout session: Amount must be at least 0.50 eur")
    assert (await pay(api, customer, invoice.id)).status_code == 200  # a new attempt, a new key
    keys = [r["idempotency_key"] for r in stripe.requests if r["path"] == "/v1/checkout/sessions"]
    assert len(set(keys)) == 2
