"""Paying invoices: opening a checkout (`initiateInvoicePaymentByRef`, `initiateInvoicePayment`) and receiving
the processor's webhook (`stripePaymentWebhook`) — behavior.md part B §6, decisions D13–D15.

Opening a checkout, in order
1. The caller must be a user (API key: 400 `User not authenticated`). Subscription-scoped route: the
   subscription must be the caller's (404 `Subscription with ID <id> not found` otherwise, as everywhere in
   invoicing). The invoice must be the caller's in this tenant (and of that subscription): else the
   contract's 400 `Invoice not found`. Only issued, partially paid and overdue invoices are payable (D13,
   400 `Invoice is not payable`), with a balance above 0 (400 `Nothing to pay`).
2. The processor: the invoice's `payment_processor`, else BILLING_DEFAULT_PAYMENT_PROCESSOR (registry.py);
   unconfigured (no STRIPE_SECRET_KEY) → 400 naming the variable.
3. The customer (D15): the profile's Stripe customer, created at Stripe on the first payment (idempotency
   key derived from the profile) and stored on the profile; a customer deleted at Stripe is replaced once.
4. In one transaction with the invoice row locked: the request (amount = the open balance, currency, return
   URLs, metadata) is fingerprinted; a pending attempt of this invoice with the same fingerprint is reused —
   with its session's URL while that session is open for at least 10 more minutes, or, when the processor
   never answered for it, by asking again with the same idempotency key. Otherwise a new attempt is
   recorded; its id is the Stripe idempotency key (`decabill-checkout-<attempt id>`) and part of the
   metadata. No database transaction stays open while Stripe is called.
5. After Stripe answered: the attempt gets the session id, URL and expiry; the invoice's
   `external_payment_id` = session id; audit `payment.init`; the invoice's other pending attempts are
   superseded and their sessions expired at Stripe after the commit (checkouts.py), so only the newest
   checkout can be paid. An attempt superseded while Stripe answered (the invoice was paid, voided or partially
   paid meanwhile) gets its new session expired too, and the request is answered afresh: 400 `Invoice is not
   payable`, or a checkout of the new balance. A refusal marks the attempt failed (400); an unreachable Stripe
   answers 503, and the retry reuses the attempt (same key: still one session).

Webhook
The signature is verified on the raw body before anything else (missing/bad → 400 `Webhook processing
failed`, nothing written). Then, in ONE transaction bound to the tenant named in the event's metadata:
the event is stored under the UNIQUE (processor, event id) with `INSERT ... ON CONFLICT DO NOTHING` —
a duplicate (also a concurrent one, which waits for the first to commit) finds the key taken and does
nothing — then the invoice row is locked and the payment applied (settlement.py) with its audit entry.
A payment changes the open balance, which supersedes the invoice's other open checkouts (checkouts.py); the
expiry of a superseded session (`checkout.session.expired`) marks its attempt `expired`.
Events naming no configured tenant, no invoice, or an invoice not in that tenant are stored as `ignored`;
unknown event types too (200). Any processing failure rolls everything back → 400, so the processor
delivers the event again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.config import get_settings
from decabill.customers.service import find_profile
from decabill.identity.principal import Principal
from decabill.invoicing import service as invoicing
from decabill.invoicing.repository import InvoiceRepository
from decabill.invoicing.service import Actor
from decabill.payments import checkouts, settlement
from decabill.payments.settlement import mark_paid as mark_paid  # for admin billing: an admin's mark paid / unpaid
from decabill.payments.settlement import mark_unpaid as mark_unpaid
from decabill.payments.base import CheckoutRequest, CheckoutSession, CustomerRequest, PaymentProcessor, PaymentStatus
from decabill.payments.errors import (
    CheckoutSuperseded,
    CustomerMissing,
    InvalidWebhook,
    InvoiceNotPayable,
    NothingToPay,
    PaymentInvoiceNotFound,
    PaymentProcessorNotConfigured,
    PaymentRefused,
    WebhookFailed,
)
from decabill.payments.registry import get_payment_processors as get_payment_processors
from decabill.payments.repository import (
    PaymentAttemptRepository,
    PaymentSettlementRepository,
    PaymentWebhookEventRepository,
)
from decabill.payments.urls import checkout_return_urls
from decabill.subscriptions.service import find_own_subscription
from decabill.tenancy import DEFAULT_TENANT, bound_tenant, current_tenant
from decabill.webhooks import service as webhooks
from models.customers import CustomerProfile
from models.invoicing import Invoice, InvoiceStatus
from models.payments import PaymentAttempt, PaymentAttemptStatus, WebhookEventResult

log = structlog.get_logger("decabill.payments")

REUSE_MARGIN = dt.timedelta(minutes=10)  # an open session closer to its expiry than this is not handed out


@dataclass(frozen=True)
class CheckoutView:
    """InitiatePaymentResponse."""

    checkout_url: str


@dataclass(frozen=True)
class _Customer:
    id: str | None
    email: str | None


# --- opening a checkout ------------------------------------------------------------------------------------


async def initiate_payment(principal: Principal, invoice_id: uuid.UUID,
                           subscription_id: uuid.UUID | None = None) -> CheckoutView:
    user_id = principal.require_user_id()
    actor = Actor.of(principal)
    async with db.transaction():
        invoice = await _payable_invoice(user_id, invoice_id, subscription_id)
        processor = get_payment_processors().for_invoice(invoice.payment_processor)
        problem = processor.configuration_problem()
        if problem:
            raise PaymentProcessorNotConfigured(problem)
        profile = await find_profile(invoice.user_id)
    customer = await _customer(processor, profile)
    try:
        return await _checkout(processor, user_id, invoice_id, subscription_id, customer, actor)
    except CustomerMissing:
        log.warning("payments.customer_missing", processor=processor.id, customer_id=customer.id)
        profile = await _forget_customer(processor, profile, customer.id)
        customer = await _customer(processor, profile, replacing=customer.id)
        try:
            return await _checkout(processor, user_id, invoice_id, subscription_id, customer, actor)
        except CustomerMissing:
            raise PaymentRefused("the customer is unknown to the payment provider") from None


async def _payable_invoice(user_id: uuid.UUID, invoice_id: uuid.UUID, subscription_id: uuid.UUID | None, *,
                           lock: bool = False) -> Invoice:
    """The caller's payable invoice (joins the caller's transaction), or the reference's 4xx."""
    async with db.transaction() as session:
        if subscription_id is not None:
            await find_own_subscription(user_id, subscription_id)
        invoice = await InvoiceRepository(session).get_of_user(invoice_id, user_id, subscription_id=subscription_id,
                                                               for_update=lock)
    if invoice is None:
        raise PaymentInvoiceNotFound()
    if invoice.status not in InvoiceStatus.OPEN:
        raise InvoiceNotPayable()
    if invoice.balance_due <= 0:
        raise NothingToPay()
    return invoice


def _profile_name(profile: CustomerProfile) -> str | None:
    name = " ".join(part.strip() for part in (profile.first_name, profile.last_name) if part and part.strip())
    return name or (profile.company or "").strip() or None


async def _customer(processor: PaymentProcessor, profile: CustomerProfile | None, *,
                    replacing: str | None = None) -> _Customer:
    """The processor-side customer of the profile (created and stored on first use, D15), or just an email."""
    if profile is None:
        return _Customer(None, None)
    field = processor.customer_profile_field
    if field is None:
        return _Customer(None, profile.email)
    existing = getattr(profile, field)
    if existing:
        return _Customer(existing, profile.email)
    name = _profile_name(profile)
    metadata = {"tenantId": profile.tenant_id, "userId": str(profile.user_id), "customerProfileId": str(profile.id)}
    # The same profile data → the same key → the same customer, even when two first payments race or the
    # answer got lost; changed data (the id was not stored) or a replaced customer → a new key.
    digest = hashlib.sha256(json.dumps([profile.email, name, metadata, replacing], sort_keys=True).encode()
                            ).hexdigest()[:16]
    created = await processor.create_customer(CustomerRequest(
        email=profile.email, name=name, metadata=metadata,
        idempotency_key=f"decabill-customer-{profile.id}-{digest}"))
    async with db.transaction():
        stored = await find_profile(profile.user_id, lock=True)
        if stored is None:  # the profile was deleted meanwhile: pay without storing
            return _Customer(created, profile.email)
        if not getattr(stored, field):
            setattr(stored, field, created)
            stored.touch()
        return _Customer(getattr(stored, field), stored.email)


async def _forget_customer(processor: PaymentProcessor, profile: CustomerProfile | None,
                           stale_id: str | None) -> CustomerProfile | None:
    field = processor.customer_profile_field
    if profile is None or field is None:
        return profile
    async with db.transaction():
        stored = await find_profile(profile.user_id, lock=True)
        if stored is not None and getattr(stored, field) == stale_id:
            setattr(stored, field, None)
            stored.touch()
        return stored


def _fingerprint(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


async def _reusable_attempt(attempts: PaymentAttemptRepository, invoice_id: uuid.UUID, processor_id: str,
                            fingerprint: str, now: dt.datetime) -> PaymentAttempt | None:
    attempt = await attempts.newest_pending(invoice_id, processor_id, fingerprint)
    if attempt is None:
        return None
    if attempt.external_id is None:
        return attempt  # the processor never answered for it: ask again with the same idempotency key
    if attempt.checkout_url and (attempt.expires_at is None or attempt.expires_at > now + REUSE_MARGIN):
        return attempt
    return None


async def _checkout(processor: PaymentProcessor, user_id: uuid.UUID, invoice_id: uuid.UUID,
                    subscription_id: uuid.UUID | None, customer: _Customer, actor: Actor) -> CheckoutView:
    """The checkout of the invoice's open balance; asked again when the invoice changed while the processor
    answered (the session just made is closed again, checkouts.py)."""
    for _ in range(2):
        view = await _checkout_once(processor, user_id, invoice_id, subscription_id, customer, actor)
        if view is not None:
            return view
    raise CheckoutSuperseded()


async def _checkout_once(processor: PaymentProcessor, user_id: uuid.UUID, invoice_id: uuid.UUID,
                         subscription_id: uuid.UUID | None, customer: _Customer, actor: Actor) -> CheckoutView | None:
    settings = get_settings()
    tenant = current_tenant()
    async with db.transaction() as session:
        invoice = await _payable_invoice(user_id, invoice_id, subscription_id, lock=True)
        amount = invoice.balance_due
        subscription = str(subscription_id or invoice.subscription_id or "")
        success_url, cancel_url = checkout_return_urls(settings, tenant, subscription_id=subscription,
                                                       invoice_id=str(invoice.id))
        metadata = {"invoiceId": str(invoice.id), "subscriptionId": subscription, "userId": str(user_id),
                    "invoiceNumber": invoice.invoice_number or "", "tenantId": tenant}
        metadata = {key: value for key, value in metadata.items() if value}  # Stripe drops empty values anyway
        asked = {"amount": amount, "currency": invoice.currency, "description": f"Invoice {invoice.invoice_number}",
                 "success_url": success_url, "cancel_url": cancel_url, "metadata": metadata,
                 "customer_id": customer.id, "customer_email": None if customer.id else customer.email}
        fingerprint = _fingerprint(asked)
        now = db.utcnow()
        attempts = PaymentAttemptRepository(session)
        attempt = await _reusable_attempt(attempts, invoice.id, processor.id, fingerprint, now)
        if attempt is not None and attempt.checkout_url:
            log.info("payments.checkout_reused", invoice_id=str(invoice.id), attempt_id=str(attempt.id))
            return CheckoutView(attempt.checkout_url)
        if attempt is None:
            attempt_id = uuid.uuid4()
            attempt = await attempts.create(PaymentAttempt(
                id=attempt_id, invoice_id=invoice.id, user_id=user_id, processor=processor.id,
                status=PaymentAttemptStatus.PENDING, amount=amount, currency=invoice.currency,
                idempotency_key=f"decabill-checkout-{attempt_id}", request_fingerprint=fingerprint,
                created_at=now, updated_at=now))
        request = CheckoutRequest(invoice_id=invoice.id, idempotency_key=attempt.idempotency_key,
                                  **{**asked, "metadata": {**metadata, "paymentAttemptId": str(attempt.id)}})
        attempt_id = attempt.id
    try:
        opened = await processor.create_checkout(request)
    except PaymentRefused as exc:
        await _attempt_failed(attempt_id, exc.message)
        raise
    return await _record_session(processor, attempt_id, opened, actor)


async def _attempt_failed(attempt_id: uuid.UUID, reason: str) -> None:
    async with db.transaction() as session:
        attempt = await PaymentAttemptRepository(session).get(attempt_id, for_update=True)
        if attempt is not None and attempt.status == PaymentAttemptStatus.PENDING and attempt.external_id is None:
            attempt.status = PaymentAttemptStatus.FAILED
            attempt.failure_reason = reason[:500]
            attempt.touch()


async def _record_session(processor: PaymentProcessor, attempt_id: uuid.UUID, opened: CheckoutSession,
                          actor: Actor) -> CheckoutView | None:
    """Record the processor's session on the attempt and close the invoice's older checkouts; None when the
    attempt was superseded meanwhile (its session is closed again)."""
    async with db.transaction() as session:
        attempts = PaymentAttemptRepository(session)
        attempt = await attempts.get(attempt_id)
        assert attempt is not None
        invoice = await invoicing.locked(session, attempt.invoice_id)  # invoice first, then attempt: webhook order
        attempt = await attempts.get(attempt_id, for_update=True, reload=True)
        assert attempt is not None
        if attempt.external_id is not None:  # a concurrent retry of this attempt recorded the same session
            if attempt.status != PaymentAttemptStatus.PENDING:
                return None
            return CheckoutView(attempt.checkout_url or opened.checkout_url)
        attempt.external_id = opened.external_id
        attempt.checkout_url = opened.checkout_url
        attempt.expires_at = opened.expires_at
        attempt.touch()
        if attempt.status == PaymentAttemptStatus.PENDING and not checkouts.payable(attempt, invoice):
            checkouts.supersede(attempt)  # paid, voided or partially paid while the processor answered
        if attempt.status != PaymentAttemptStatus.PENDING:
            checkouts.close_after_commit([attempt.id])
            return None
        checkouts.close_after_commit(await checkouts.supersede_others(session, attempt))
        if invoice is not None:
            invoice.external_payment_id = opened.external_id
            invoice.touch()
            await invoicing.audit(session, invoice, "payment.init", "Payment checkout session created", actor=actor,
                               context={"processor": processor.id, "externalId": opened.external_id,
                                        "attemptId": attempt.id, "amount": attempt.amount,
                                        "currency": attempt.currency})
    log.info("payments.checkout_opened", processor=processor.id, attempt_id=str(attempt_id),
             external_id=opened.external_id)
    return CheckoutView(opened.checkout_url)


# --- webhook -------------------------------------------------------------------------------------------------


async def receive_webhook(processor_id: str, payload: bytes, signature: str | None) -> None:
    """Verify, store and apply one webhook delivery; any failure → 400 `Webhook processing failed`."""
    processor = get_payment_processors().get(processor_id)
    if processor is None:
        log.warning("payments.webhook_rejected", processor=processor_id, reason="processor not registered")
        raise WebhookFailed()
    try:
        event = processor.parse_webhook(payload, signature)
    except InvalidWebhook as exc:
        log.warning("payments.webhook_rejected", processor=processor_id, reason=str(exc))
        raise WebhookFailed() from None
    except Exception as exc:  # noqa: BLE001 - a plugin's parser failing is a rejected delivery too
        log.error("payments.webhook_rejected", processor=processor_id, reason=type(exc).__name__, exc_info=exc)
        raise WebhookFailed() from None
    try:
        result, detail = await _process(processor, event)
    except Exception as exc:  # noqa: BLE001 - rolled back; the processor retries the delivery
        log.error("payments.webhook_failed", processor=processor_id, event_id=event.event_id, event_type=event.type,
                  exc_info=exc)
        raise WebhookFailed() from None
    log.info("payments.webhook", processor=processor_id, event_id=event.event_id, event_type=event.type,
             result=result, detail=detail)


async def _process(processor: PaymentProcessor, event) -> tuple[str, str]:
    payment = event.update
    configured = get_settings().tenants
    tenant = payment.tenant_id if payment is not None and payment.tenant_id in configured else None
    # The event is stored under the tenant it names (the default one when it names none it may speak for).
    with bound_tenant(tenant or DEFAULT_TENANT):
        async with db.transaction() as session:
            events = PaymentWebhookEventRepository(session)
            record_id = await events.store_once(
                processor=processor.id, event_id=event.event_id[:255], event_type=event.type[:100],
                payload_hash=event.payload_hash, result=WebhookEventResult.PROCESSED, received_at=db.utcnow())
            if record_id is None:  # a duplicate delivery
                return "duplicate", "already received"
            result, detail, invoice_id, attempt_id = await _apply(session, processor, event, tenant)
            await events.set_result(record_id, result=result, detail=detail[:500], invoice_id=invoice_id,
                                    attempt_id=attempt_id)
            return result, detail


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


async def _attempt_for(session: AsyncSession, processor_id: str, payment, invoice_id: uuid.UUID) -> PaymentAttempt | None:
    """The attempt the event is about: by the session id, else by the attempt id in the metadata."""
    attempts = PaymentAttemptRepository(session)
    if payment.external_id:
        found = await attempts.by_external_id(processor_id, payment.external_id)
        if found is not None:
            return found
    attempt_id = _uuid(payment.attempt_id)
    if attempt_id is None:
        return None
    found = await attempts.of_invoice(attempt_id, invoice_id, processor_id)
    if found is not None and found.external_id is None and payment.external_id:
        found.external_id = payment.external_id  # the answer to the create call was lost, the event tells it
    return found


async def _apply(session: AsyncSession, processor: PaymentProcessor, event,
                 tenant: str | None) -> tuple[str, str, uuid.UUID | None, uuid.UUID | None]:
    """(result, detail, invoice id, attempt id) of one new event, applied in the caller's transaction."""
    ignored = WebhookEventResult.IGNORED
    payment = event.update
    if payment is None:
        return ignored, f"event type {event.type} has no effect", None, None
    if tenant is None:
        return ignored, f"no configured tenant in the event (tenantId={payment.tenant_id!s:.64})", None, None
    invoice_id = _uuid(payment.invoice_id)
    if invoice_id is None:
        return ignored, "the event names no invoice", None, None
    invoice = await invoicing.locked(session, invoice_id)
    if invoice is None:
        return ignored, f"invoice {invoice_id} not found in tenant {tenant}", invoice_id, None
    attempt = await _attempt_for(session, processor.id, payment, invoice.id)
    attempt_id = attempt.id if attempt is not None else None
    now = db.utcnow()
    context = {"eventId": event.event_id, "attemptId": attempt_id}

    if payment.status == PaymentStatus.SUCCEEDED:
        if payment.amount is None or payment.amount <= 0 or not payment.currency:
            return ignored, "the event reports no amount paid", invoice.id, attempt_id
        # Idempotent per payment, not only per event: a second event about the same payment changes nothing.
        key = (payment.payment_key or payment.external_id or f"event:{event.event_id}")[:255]
        if await PaymentSettlementRepository(session).settle_once(
                processor=processor.id, payment_key=key, invoice_id=invoice.id, event_id=event.event_id[:255],
                amount=payment.amount, currency=payment.currency.upper()[:10], settled_at=now) is None:
            return WebhookEventResult.PROCESSED, f"payment {key} was settled before", invoice.id, attempt_id
        outcome = await settlement.record_payment(
            session, invoice, amount=payment.amount, currency=payment.currency, processor=processor.id,
            external_id=payment.external_id, context=context)
        if outcome != settlement.PaymentOutcome.NOT_APPLIED and payment.external_id:
            invoice.external_payment_id = payment.external_id
        if attempt is not None:
            attempt.status = PaymentAttemptStatus.SUCCEEDED
            attempt.amount_paid = payment.amount
            attempt.completed_at = now
            attempt.touch()
        return WebhookEventResult.PROCESSED, f"payment of {payment.amount} {payment.currency}: {outcome.value}", \
            invoice.id, attempt_id

    if payment.status == PaymentStatus.PENDING:
        return WebhookEventResult.PROCESSED, "checkout completed, the payment has not settled yet", invoice.id, attempt_id

    if payment.status == PaymentStatus.FAILED:
        if attempt is not None and attempt.status in (PaymentAttemptStatus.PENDING, PaymentAttemptStatus.SUPERSEDED):
            attempt.status = PaymentAttemptStatus.FAILED
            attempt.failure_reason = "the delayed payment failed"
            attempt.completed_at = now
            attempt.touch()
        await invoicing.audit(session, invoice, "payment.failed", "Payment failed", actor=invoicing.SYSTEM, level="warn",
                           context={"processor": processor.id, "externalId": payment.external_id, **context})
        await webhooks.record(session, invoice.tenant_id, "payment.failed", invoicing.InvoiceView(invoice))
        return WebhookEventResult.PROCESSED, "payment failed", invoice.id, attempt_id

    # PaymentStatus.CANCELED: the checkout expired unpaid (at its time, or closed by us: superseded); the invoice
    # stays as it is.
    closed = {PaymentAttemptStatus.PENDING: PaymentAttemptStatus.CANCELED,
              PaymentAttemptStatus.SUPERSEDED: PaymentAttemptStatus.EXPIRED}
    if attempt is not None and attempt.status in closed:
        attempt.status = closed[attempt.status]
        attempt.checkout_url = None
        attempt.completed_at = now
        attempt.touch()
    return WebhookEventResult.PROCESSED, "checkout expired", invoice.id, attempt_id
