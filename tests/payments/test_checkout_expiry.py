"""Superseded checkouts are expired at Stripe (decabill/payments/checkouts.py): a newer checkout of the invoice,
a payment, a partial payment, mark paid and void close the invoice's other open sessions after the commit, so
a second browser tab can no longer pay; a failed expiry is retried by the job and done once; a session the
customer completed first is no error. Also the fake's expire endpoint on the wire."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import stripe as stripe_lib
from sqlalchemy import update

from decabill import db
from decabill.payments import get_payment_processors, tasks
from decabill.tenancy import bound_tenant
from models.invoicing import Invoice, InvoiceAuditLog
from models.payments import PaymentAttempt
from tests.admin.conftest import BASE
from tests.admin.test_bill_now import drain
from tests.fakes.stripe import SessionClosed
from tests.jobs.conftest import update_row
from tests.payments.conftest import FRONTEND, deliver, invoice_row, issue_invoice, pay, rows, session_id_of
from tests.payments.test_processor import install_plugin


def _expiries(stripe, session_id: str) -> list[dict]:
    return [r for r in stripe.requests
            if r["method"] == "POST" and r["path"] == f"/v1/checkout/sessions/{session_id}/expire"]


async def _attempt(session_id: str) -> PaymentAttempt:
    [attempt] = await rows(PaymentAttempt, PaymentAttempt.external_id == session_id)
    return attempt


async def _open_checkout(api, customer, invoice) -> str:
    return session_id_of((await pay(api, customer, invoice.id)).json()["checkoutUrl"])


async def _about_to_expire(session_id: str) -> None:
    """Let time pass: the session closes in 5 minutes, too soon to hand it out again."""
    attempt = await _attempt(session_id)
    with bound_tenant("default"):
        await update_row(PaymentAttempt, attempt.id, expires_at=db.utcnow() + dt.timedelta(minutes=5))


async def _admin(api, admin, invoice, verb: str):
    response = await api.post(f"{BASE}/invoices/{invoice.id}/{verb}", token=admin, json={})
    assert response.status_code == 200, response.text
    return response


async def _run_job() -> int:
    sent = await tasks.close_superseded_checkouts.original_func()
    await drain()
    return sent


async def _assert_expired(stripe, session_id: str, expiries: int = 1) -> None:
    """Expired at Stripe through the API (`expiries` calls in all), recorded on the attempt, unpayable."""
    assert stripe.sessions[session_id]["status"] == "expired"
    assert len(_expiries(stripe, session_id)) == expiries
    attempt = await _attempt(session_id)
    assert (attempt.status, attempt.checkout_url) == ("expired", None) and attempt.completed_at is not None
    with pytest.raises(SessionClosed):
        stripe.complete_session(session_id)


# --- a newer checkout ------------------------------------------------------------------------------------------


async def test_a_session_about_to_expire_is_replaced_and_expired(billing_api, customer, stripe):
    api = billing_api
    invoice = await issue_invoice(customer)
    first = await _open_checkout(api, customer, invoice)
    await _about_to_expire(first)
    second = await _open_checkout(api, customer, invoice)
    assert second != first

    await _assert_expired(stripe, first)
    creates = [i for i, r in enumerate(stripe.requests) if r["path"] == "/v1/checkout/sessions"]
    assert creates[-1] < stripe.requests.index(_expiries(stripe, first)[0])  # the new checkout came first
    assert (await _attempt(second)).status == "pending"
    assert (await pay(api, customer, invoice.id)).json()["checkoutUrl"] == stripe.sessions[second]["url"]

    # Stripe reports the expiry it made; the newer checkout pays the invoice.
    assert (await deliver(api, stripe.expired_event(first))).status_code == 200
    assert (await _attempt(first)).status == "expired"
    assert (await deliver(api, stripe.complete_session(second))).status_code == 200
    stored = await invoice_row(invoice.id)
    assert (stored.status, stored.amount_paid) == ("paid", Decimal("119.0000"))
    assert await _run_job() == 0


async def test_a_checkout_with_other_return_urls_supersedes_the_open_one(env, billing_api, make_api, customer,
                                                                          stripe):
    invoice = await issue_invoice(customer)
    first = await _open_checkout(billing_api, customer, invoice)
    env.update(BILLING_FRONTEND_URL="https://console.example.test")
    api = await make_api()
    second = await _open_checkout(api, customer, invoice)
    assert stripe.sessions[second]["success_url"].startswith("https://console.example.test/")
    assert stripe.sessions[first]["success_url"].startswith(FRONTEND)
    await _assert_expired(stripe, first)
    assert stripe.sessions[second]["status"] == "open"


async def test_a_checkout_superseded_while_stripe_answered_is_expired_at_once(billing_api, admin, customer, stripe,
                                                                              monkeypatch):
    """The invoice is marked paid while Stripe opens its checkout: that session is expired, the pay request
    answers as a fresh one would (not payable), nobody gets its URL."""
    api = billing_api
    invoice = await issue_invoice(customer)
    processor = get_payment_processors().get("stripe")
    create = processor.create_checkout

    async def meanwhile_paid(request):
        opened = await create(request)
        await _admin(api, admin, invoice, "mark-paid")
        return opened

    monkeypatch.setattr(processor, "create_checkout", meanwhile_paid)
    response = await pay(api, customer, invoice.id, expect=400)
    assert response.json()["message"] == "Invoice is not payable"
    [session_id] = stripe.sessions
    await _assert_expired(stripe, session_id)
    assert not await rows(InvoiceAuditLog, InvoiceAuditLog.process == "payment.init")


# --- the invoice's balance changes -------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["mark-paid", "void"])
async def test_mark_paid_and_void_expire_the_open_checkout(billing_api, admin, customer, stripe, verb):
    api = billing_api
    invoice = await issue_invoice(customer)
    session_id = await _open_checkout(api, customer, invoice)
    await _admin(api, admin, invoice, verb)
    assert (await invoice_row(invoice.id)).status == {"mark-paid": "paid", "void": "void"}[verb]
    await _assert_expired(stripe, session_id)
    assert await _run_job() == 0


async def test_a_payment_expires_the_other_open_checkouts(billing_api, customer, stripe):
    """Two tabs: the older checkout could not be expired while Stripe was down; the customer pays the newer one
    partially (a discount at Stripe), later the rest: each payment closes what is still open for an old
    balance, and the paying checkouts themselves are left alone."""
    api = billing_api
    invoice = await issue_invoice(customer)
    first = await _open_checkout(api, customer, invoice)
    await _about_to_expire(first)
    stripe.fail_next(503, path=f"/v1/checkout/sessions/{first}/expire")
    second = await _open_checkout(api, customer, invoice)
    assert stripe.sessions[first]["status"] == "open" and (await _attempt(first)).status == "superseded"

    event = stripe.complete_session(second)
    event["data"]["object"]["amount_total"] = 5000
    assert (await deliver(api, event)).status_code == 200
    assert (await invoice_row(invoice.id)).status == "partially_paid"
    await _assert_expired(stripe, first, expiries=2)  # the failed call, then the one after the payment
    assert (await _attempt(second)).status == "succeeded" and not _expiries(stripe, second)

    third = await _open_checkout(api, customer, invoice)  # the remaining 69.00
    assert (await deliver(api, stripe.complete_session(third))).status_code == 200
    assert (await invoice_row(invoice.id)).status == "paid"
    assert [a.status for a in sorted(await rows(PaymentAttempt), key=lambda a: a.created_at)] == [
        "expired", "succeeded", "succeeded"]
    assert not _expiries(stripe, third) and await _run_job() == 0


# --- retries and closed sessions --------------------------------------------------------------------------------


async def test_stripe_down_the_expiry_is_retried_by_the_job_and_done_once(billing_api, admin, customer, stripe):
    api = billing_api
    invoice = await issue_invoice(customer)
    session_id = await _open_checkout(api, customer, invoice)
    stripe.fail_next(500, path=f"/v1/checkout/sessions/{session_id}/expire")
    await _admin(api, admin, invoice, "mark-paid")  # Stripe's failure does not fail the admin's action

    attempt = await _attempt(session_id)
    assert (attempt.status, attempt.checkout_url) == ("superseded", stripe.sessions[session_id]["url"])
    assert stripe.sessions[session_id]["status"] == "open" and len(_expiries(stripe, session_id)) == 1
    assert (await pay(api, customer, invoice.id, expect=400)).json()["message"] == "Invoice is not payable"

    assert await _run_job() == 1
    await _assert_expired(stripe, session_id, expiries=2)
    assert await _run_job() == 0
    assert len(_expiries(stripe, session_id)) == 2


async def test_a_session_completed_first_is_no_error(billing_api, admin, customer, stripe):
    """The customer paid in the other tab just before the admin marked the invoice paid: Stripe refuses to
    expire the complete session (400), which ends the closing; the payment is recorded for a refund."""
    api = billing_api
    invoice = await issue_invoice(customer)
    session_id = await _open_checkout(api, customer, invoice)
    completed = stripe.complete_session(session_id)
    await _admin(api, admin, invoice, "mark-paid")

    [refused] = _expiries(stripe, session_id)
    assert stripe.sessions[session_id]["status"] == "complete"
    attempt = await _attempt(session_id)
    assert (attempt.status, attempt.checkout_url) == ("superseded", None)
    assert await _run_job() == 0 and len(_expiries(stripe, session_id)) == 1

    assert (await deliver(api, completed)).status_code == 200
    assert (await _attempt(session_id)).status == "succeeded"
    assert len(await rows(InvoiceAuditLog, InvoiceAuditLog.process == "payment_received_on_paid")) == 1


async def test_the_job_closes_checkouts_whose_invoice_moved_on_unseen(billing_api, customer, stripe):
    """The process stopped between a balance change's commit and the expiry: the job finds the pending
    attempt whose invoice is no longer payable and closes its session."""
    api = billing_api
    invoice = await issue_invoice(customer)
    session_id = await _open_checkout(api, customer, invoice)
    with bound_tenant("default"):
        async with db.transaction() as session:  # a plain UPDATE: no ORM attribute event
            await session.execute(update(Invoice).where(Invoice.id == invoice.id).values(status="void",
                                                                                        balance_due=0))
    assert (await _attempt(session_id)).status == "pending"
    assert await _run_job() == 1
    await _assert_expired(stripe, session_id)


async def test_a_processor_without_expiry_leaves_the_session_alone(tmp_path, monkeypatch, env, make_api,
                                                                   billing_api, admin, customer, stripe):
    install_plugin(tmp_path, monkeypatch, """
        [decabill.payment_processors]
        tiny-pay = decabill_test_payplugin:TinyPay
    """)
    env.update(BILLING_DEFAULT_PAYMENT_PROCESSOR="tiny-pay")
    api = await make_api()
    invoice = await issue_invoice(customer)
    await pay(api, customer, invoice.id)
    await _admin(api, admin, invoice, "mark-paid")
    [attempt] = await rows(PaymentAttempt)
    assert (attempt.processor, attempt.status, attempt.checkout_url) == ("tiny-pay", "superseded", None)
    assert await _run_job() == 0 and stripe.requests == []


# --- the fake on the wire ---------------------------------------------------------------------------------------


def test_the_fake_expires_open_sessions_only(fake_cloud):
    fake_cloud.reset()
    client = stripe_lib.StripeClient(fake_cloud.stripe_key, base_addresses={"api": fake_cloud.stripe_url},
                                     max_network_retries=0)
    params = {"mode": "payment", "success_url": "https://x.test/ok", "line_items": [
        {"quantity": 1, "price_data": {"currency": "eur", "unit_amount": 100, "product_data": {"name": "A"}}}]}
    open_session = client.v1.checkout.sessions.create(params=params)
    expired = client.v1.checkout.sessions.expire(open_session.id)
    assert (expired.object, expired.status, expired.url) == ("checkout.session", "expired", None)
    assert fake_cloud.stripe.expired_event(open_session.id)["data"]["object"]["status"] == "expired"
    with pytest.raises(SessionClosed):
        fake_cloud.stripe.complete_session(open_session.id)

    paid = client.v1.checkout.sessions.create(params=params)
    fake_cloud.stripe.complete_session(paid.id)
    for session_id, status in ((open_session.id, "expired"), (paid.id, "complete")):
        with pytest.raises(stripe_lib.InvalidRequestError) as refused:
            client.v1.checkout.sessions.expire(session_id)
        assert refused.value.http_status == 400 and refused.value.code is None
        assert str(refused.value.user_message) == (
            'Only Checkout Sessions with a status in ["open"] can be expired. '
            f"This Checkout Session has a status of `{status}`.")
    with pytest.raises(stripe_lib.InvalidRequestError) as missing:
        client.v1.checkout.sessions.expire("cs_test_missing")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
