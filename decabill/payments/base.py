"""The payment processor interface (behavior.md part B §6.1) and the values that cross it.

A processor opens a hosted checkout for an amount and turns the processor's signed webhook deliveries into
`WebhookEvent`s carrying a normalised `PaymentUpdate`. It never touches the database: the payments service
records attempts and events and applies payments to invoices (decabill/payments/service.py, settlement.py).

Plugins (`decabill.payment_processors` entry points) subclass `PaymentProcessor`; see docs/configuration.md.
"""

from __future__ import annotations

import datetime as dt
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, ClassVar

from decabill.observability.calls import instrument_methods
from decabill.payments.errors import (
    CustomerMissing,
    PaymentProcessorNotConfigured,
    PaymentProcessorUnavailable,
    PaymentRefused,
)

# ISO 4217 currencies without minor unit, and with three decimals, as Stripe counts them
# (https://docs.stripe.com/currencies#zero-decimal): amounts are sent in the smallest unit.
ZERO_DECIMAL_CURRENCIES = frozenset({
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
})
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def minor_unit_exponent(currency: str) -> int:
    code = currency.upper()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def to_minor_units(amount: Decimal, currency: str) -> int:
    """The exact decimal amount in the currency's smallest unit, rounded half up (EUR 119.005 → 11901)."""
    return int((Decimal(amount) * (Decimal(10) ** minor_unit_exponent(currency))).quantize(Decimal(1), ROUND_HALF_UP))


def from_minor_units(amount: int, currency: str) -> Decimal:
    exponent = minor_unit_exponent(currency)
    return (Decimal(int(amount)) / (Decimal(10) ** exponent)).quantize(Decimal(1).scaleb(-exponent))


@dataclass(frozen=True)
class CustomerRequest:
    """Create the processor-side customer of a customer profile."""

    email: str | None
    name: str | None
    metadata: dict[str, str]
    idempotency_key: str


@dataclass(frozen=True)
class CheckoutRequest:
    """Open a hosted checkout for one invoice's open balance."""

    invoice_id: uuid.UUID
    amount: Decimal  # major units, e.g. Decimal("119.00")
    currency: str  # ISO 4217 as on the invoice
    description: str  # `Invoice <number>`
    success_url: str
    cancel_url: str
    metadata: dict[str, str]
    idempotency_key: str
    customer_id: str | None = None
    customer_email: str | None = None


@dataclass(frozen=True)
class CheckoutSession:
    external_id: str
    checkout_url: str
    expires_at: dt.datetime | None = None


class CheckoutClosure:
    """What `PaymentProcessor.expire_checkout` achieved for a session."""

    EXPIRED = "expired"  # closed now, or it had closed before: it can no longer be paid
    COMPLETED = "completed"  # the customer finished it first; its payment is reported by webhook
    LEFT_OPEN = "left_open"  # the processor cannot close it (no support, or it does not know the session)


class PaymentStatus:
    SUCCEEDED = "succeeded"  # money arrived: apply `amount` to the invoice
    PENDING = "pending"  # checkout finished, a delayed payment method has not settled yet
    FAILED = "failed"  # the (delayed) payment failed
    CANCELED = "canceled"  # the checkout expired unpaid


@dataclass(frozen=True)
class PaymentUpdate:
    """What a webhook event means for a payment (the reference's map-webhook-to-payment-update)."""

    status: str  # PaymentStatus
    external_id: str | None  # the checkout session id
    invoice_id: str | None  # as found in the event (metadata / client reference): not yet validated
    tenant_id: str | None
    attempt_id: str | None = None
    amount: Decimal | None = None  # major units paid, for SUCCEEDED
    currency: str | None = None
    # The processor's identity of the payment itself, the same in every event about it (Stripe: the Checkout
    # Session, else its PaymentIntent): a payment is settled once per key, whichever events report it.
    payment_key: str | None = None


@dataclass(frozen=True)
class WebhookEvent:
    event_id: str
    type: str
    payload_hash: str  # sha256 hex of the raw body
    update: PaymentUpdate | None = None  # None: an event type without effect on payments
    data: dict = field(default_factory=dict, repr=False)


#: the methods that call the processor's API: counted, timed and traced per processor (decabill/observability)
API_METHODS = ("create_customer", "create_checkout", "expire_checkout")


def call_outcome(error: BaseException) -> str:
    """The `outcome` label of a processor call that raised `error`."""
    for kind, outcome in ((PaymentProcessorUnavailable, "unavailable"), (PaymentProcessorNotConfigured, "not_configured"),
                          (PaymentRefused, "refused"), (CustomerMissing, "customer_missing")):
        if isinstance(error, kind):
            return outcome
    return "error"


class PaymentProcessor(ABC):
    """One payment processor. Subclasses set `id` (stored on invoices as `payment_processor`, at most 50
    characters) and `display_name`."""

    id: ClassVar[str]
    display_name: ClassVar[str]
    # The CustomerProfile column that keeps this processor's customer id (D15), or None when the processor
    # has no customer objects. The built-in Stripe processor uses `stripe_customer_id`.
    customer_profile_field: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        instrument_methods(cls, "payment", API_METHODS, call_outcome)  # plugins included

    def configuration_problem(self) -> str | None:
        """Why this processor cannot open a checkout now (e.g. a missing API key), or None."""
        return None

    async def create_customer(self, request: CustomerRequest) -> str:
        """The id of a new processor-side customer (only called when `customer_profile_field` is set; the
        registry refuses a processor that sets it without overriding this)."""
        raise TypeError(f"{type(self).__qualname__} has no processor-side customers")

    @abstractmethod
    async def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        """Open the checkout. Raise `PaymentRefused` when the processor refuses the request,
        `PaymentProcessorUnavailable` when it cannot be reached, `CustomerMissing` when the given
        customer id is unknown to it."""

    async def expire_checkout(self, external_id: str) -> str:
        """Close the open checkout session `external_id` so that it can no longer be paid; a `CheckoutClosure`.
        Called when a newer checkout replaced it or its invoice's open balance changed, possibly several times
        for one session: a session that is already closed is no error. Raise (e.g.
        `PaymentProcessorUnavailable`) to be asked again later. The default, for processors that cannot
        close sessions: `LEFT_OPEN` (the session stays payable until the processor's own expiry)."""
        return CheckoutClosure.LEFT_OPEN

    async def check_access(self) -> str | None:
        """Ask the processor whether it accepts the configured credentials (`decabill doctor`): a short note of
        what answered, None when this processor cannot tell; raise its errors (as the other calls do) otherwise."""
        return None

    @abstractmethod
    def parse_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        """Verify a delivery on its raw body, then read it. Raise `InvalidWebhook` for anything that fails."""
