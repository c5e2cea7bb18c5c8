"""The built-in processor: Stripe Checkout through the official `stripe` library (shared/notes/stack.md §9.1).

* `StripeClient(STRIPE_SECRET_KEY, base_addresses={"api": STRIPE_API_BASE}, max_network_retries=...)`;
  STRIPE_API_BASE is only set to point the library at a local fake (tests). Calls are the async methods.
  The library retries network errors, 409/429/5xx with the SAME idempotency key.
* A Checkout Session in `payment` mode with one line: `price_data` in the invoice currency (lower case),
  `unit_amount` = the open balance in the smallest currency unit (from the exact decimal, half up),
  product name `Invoice <number>`; `client_reference_id` = invoice id; our metadata; `customer` (the
  profile's Stripe customer, D15) or else `customer_email`.
* Closing a superseded session: `POST /v1/checkout/sessions/{id}/expire`. Stripe answers 400 for a session
  that is not open any more; the session is then retrieved to tell `expired` (done) from `complete` (paid
  first: the webhook reports it). A session unknown to the key (404) cannot be closed with it.
* Webhooks: `stripe.WebhookSignature.verify_header` on the raw body with STRIPE_WEBHOOK_SECRET and a
  tolerance of STRIPE_WEBHOOK_TOLERANCE_SECONDS (300) in both directions (several `v1` signatures are accepted while a secret rolls over); only then is the body
  parsed, as plain JSON (a `StripeObject` is not a dict in stripe 16).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import time
from typing import Any

import stripe
import structlog

from decabill.config import Settings
from decabill.payments.base import (
    CheckoutClosure,
    CheckoutRequest,
    CheckoutSession,
    CustomerRequest,
    PaymentProcessor,
    PaymentStatus,
    PaymentUpdate,
    WebhookEvent,
    from_minor_units,
    to_minor_units,
)
from decabill.payments.errors import (
    CustomerMissing,
    InvalidWebhook,
    PaymentProcessorNotConfigured,
    PaymentProcessorUnavailable,
    PaymentRefused,
)

log = structlog.get_logger("decabill.payments")

# checkout.session.* events and what they mean for the payment.
CHECKOUT_COMPLETED = "checkout.session.completed"
ASYNC_SUCCEEDED = "checkout.session.async_payment_succeeded"
ASYNC_FAILED = "checkout.session.async_payment_failed"
EXPIRED = "checkout.session.expired"
HANDLED_EVENTS = (CHECKOUT_COMPLETED, ASYNC_SUCCEEDED, ASYNC_FAILED, EXPIRED)


class _HTTPXClient(stripe.HTTPXClient):
    """stripe's async httpx client, sending the form body as `content=` (its `data=<str>` triggers httpx's
    "Use 'content=<...>'" DeprecationWarning on every call)."""

    def _get_request_args_kwargs(self, method, url, headers, post_data):
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        if isinstance(post_data, (str, bytes)):
            kwargs.pop("data", None)
            kwargs["content"] = post_data
        elif not post_data:
            kwargs.pop("data", None)
        return args, kwargs


class StripeProcessor(PaymentProcessor):
    id = "stripe"
    display_name = "Stripe"
    customer_profile_field = "stripe_customer_id"

    def __init__(self, settings: Settings) -> None:
        self._secret_key = settings.stripe_secret_key
        self._webhook_secret = settings.stripe_webhook_secret
        self._webhook_tolerance = settings.stripe_webhook_tolerance_seconds
        self._api_base = settings.stripe_api_base.rstrip("/") if settings.stripe_api_base else None
        self._max_network_retries = settings.stripe_max_network_retries
        self._timeout = settings.stripe_timeout_seconds
        self._client: stripe.StripeClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # --- client -------------------------------------------------------------------------------------

    def configuration_problem(self) -> str | None:
        return None if self._secret_key else "Stripe is not configured: set STRIPE_SECRET_KEY"

    def _stripe(self) -> stripe.StripeClient:
        """One client per event loop (its httpx connection pool belongs to the loop that opened it)."""
        problem = self.configuration_problem()
        if problem:
            raise PaymentProcessorNotConfigured(problem)
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            options: dict[str, Any] = {}
            if self._api_base:
                options["base_addresses"] = {"api": self._api_base}
            self._client = stripe.StripeClient(
                self._secret_key, max_network_retries=self._max_network_retries,
                http_client=_HTTPXClient(timeout=self._timeout), **options,
            )
            self._client_loop = loop
        return self._client

    @staticmethod
    def _translate(exc: stripe.StripeError, action: str) -> Exception:
        """Our error for a failed Stripe call."""
        log.warning("payments.stripe_error", action=action, error=type(exc).__name__, http_status=exc.http_status,
                    code=exc.code, message=exc.user_message or str(exc))
        if isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
            return PaymentProcessorNotConfigured("Stripe rejected the configured STRIPE_SECRET_KEY")
        if isinstance(exc, stripe.InvalidRequestError) and exc.code == "resource_missing" and exc.param == "customer":
            return CustomerMissing(str(exc))
        if isinstance(exc, (stripe.InvalidRequestError, stripe.IdempotencyError, stripe.CardError)):
            return PaymentRefused(exc.user_message or "the request was refused by Stripe")
        return PaymentProcessorUnavailable()  # network errors, 5xx, rate limits: worth a retry

    # --- checkout -----------------------------------------------------------------------------------

    async def create_customer(self, request: CustomerRequest) -> str:
        params: dict[str, Any] = {"metadata": request.metadata}
        if request.email:
            params["email"] = request.email
        if request.name:
            params["name"] = request.name
        try:
            customer = await self._stripe().v1.customers.create_async(
                params=params, options={"idempotency_key": request.idempotency_key})
        except stripe.StripeError as exc:
            raise self._translate(exc, "create customer") from exc
        return customer.id

    async def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [{
                "quantity": 1,
                "price_data": {
                    "currency": request.currency.lower(),
                    "unit_amount": to_minor_units(request.amount, request.currency),
                    "product_data": {"name": request.description},
                },
            }],
            "client_reference_id": str(request.invoice_id),
            "metadata": request.metadata,
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
        }
        if request.customer_id:
            params["customer"] = request.customer_id
        elif request.customer_email:
            params["customer_email"] = request.customer_email
        try:
            session = await self._stripe().v1.checkout.sessions.create_async(
                params=params, options={"idempotency_key": request.idempotency_key})
        except stripe.StripeError as exc:
            raise self._translate(exc, "create checkout session") from exc
        url = getattr(session, "url", None)
        if not session.id or not url:
            log.error("payments.stripe_no_checkout_url", session_id=session.id)
            raise PaymentProcessorUnavailable()
        expires = getattr(session, "expires_at", None)
        expires_at = dt.datetime.fromtimestamp(int(expires), dt.timezone.utc) if expires else None
        return CheckoutSession(external_id=session.id, checkout_url=url, expires_at=expires_at)

    async def expire_checkout(self, external_id: str) -> str:
        sessions = self._stripe().v1.checkout.sessions
        try:
            await sessions.expire_async(external_id)
            return CheckoutClosure.EXPIRED
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                log.warning("payments.stripe_session_unknown", session_id=external_id)
                return CheckoutClosure.LEFT_OPEN
            refusal = exc  # 400: not open any more, or something else: the session's status tells
        except stripe.StripeError as exc:
            raise self._translate(exc, "expire checkout session") from exc
        try:
            session = await sessions.retrieve_async(external_id)
        except stripe.StripeError as exc:
            raise self._translate(exc, "retrieve checkout session") from exc
        if session.status == "expired":
            return CheckoutClosure.EXPIRED
        if session.status == "complete":
            return CheckoutClosure.COMPLETED
        raise self._translate(refusal, "expire checkout session")

    async def check_access(self) -> str | None:
        """Lists one Checkout Session: what the key must be allowed to do anyway (a restricted key without
        Checkout access is refused here too)."""
        try:
            await self._stripe().v1.checkout.sessions.list_async(params={"limit": 1})
        except stripe.StripeError as exc:
            raise self._translate(exc, "list checkout sessions") from exc
        return "the key may read Checkout Sessions"

    # --- webhooks -----------------------------------------------------------------------------------

    def parse_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        if not self._webhook_secret:
            raise InvalidWebhook("STRIPE_WEBHOOK_SECRET is not set")
        try:
            stripe.WebhookSignature.verify_header(payload, signature, self._webhook_secret,
                                                  tolerance=self._webhook_tolerance)
            # The library refuses only timestamps too far in the past; a signature dated in the future is
            # as suspect (a captured delivery replayed later, or a clock that cannot be trusted).
            if _signed_at(signature or "") > time.time() + self._webhook_tolerance:
                raise stripe.SignatureVerificationError("Timestamp outside the tolerance zone", signature)
        except stripe.SignatureVerificationError as exc:
            raise InvalidWebhook(f"Invalid webhook signature: {exc.user_message or exc}") from None
        except (UnicodeDecodeError, ValueError, TypeError, IndexError) as exc:
            raise InvalidWebhook(f"Invalid webhook signature: {type(exc).__name__}") from None
        try:
            event = json.loads(payload)
        except (ValueError, RecursionError):
            raise InvalidWebhook("Webhook body is not JSON") from None
        if not (isinstance(event, dict) and _text(event.get("id")) and _text(event.get("type"))):
            raise InvalidWebhook("Webhook body is not a Stripe event")
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        return WebhookEvent(event_id=event["id"], type=event["type"], payload_hash=hashlib.sha256(payload).hexdigest(),
                            update=_payment_update(event["type"], data), data=data)


def _signed_at(signature: str) -> int:
    """The `t=` of a Stripe-Signature header (verify_header has already checked it is there)."""
    for part in signature.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            return int(value)
    raise ValueError("no timestamp")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _payment_update(event_type: str, data: dict) -> PaymentUpdate | None:
    if event_type not in HANDLED_EVENTS:
        return None
    session = data.get("object") if isinstance(data.get("object"), dict) else data
    metadata = session.get("metadata") if isinstance(session.get("metadata"), dict) else {}
    if event_type == CHECKOUT_COMPLETED:
        # A delayed method (SEPA debit, bank transfer) completes Checkout unpaid; the money is only there at
        # `async_payment_succeeded` (Stripe's fulfilment guide). The reference marked the invoice paid here.
        settled = session.get("payment_status") in ("paid", "no_payment_required")
        status = PaymentStatus.SUCCEEDED if settled else PaymentStatus.PENDING
    else:
        status = {ASYNC_SUCCEEDED: PaymentStatus.SUCCEEDED, ASYNC_FAILED: PaymentStatus.FAILED,
                  EXPIRED: PaymentStatus.CANCELED}[event_type]
    amount = currency = None
    total, code = session.get("amount_total"), _text(session.get("currency"))
    if status == PaymentStatus.SUCCEEDED and isinstance(total, int) and not isinstance(total, bool) and code:
        currency = code.upper()
        amount = from_minor_units(total, currency)
    return PaymentUpdate(
        status=status, external_id=_text(session.get("id")),
        invoice_id=_text(metadata.get("invoiceId")) or _text(session.get("client_reference_id")),
        tenant_id=_text(metadata.get("tenantId")), attempt_id=_text(metadata.get("paymentAttemptId")),
        amount=amount, currency=currency,
        # completed and async_payment_succeeded carry the same session: one payment, settled once
        payment_key=_text(session.get("id")) or _text(session.get("payment_intent")),
    )
