"""Payments: Stripe Checkout for an invoice's open balance, and signed, idempotent webhooks
(behavior.md part B §6; D13–D15).

* `base.py` — the `PaymentProcessor` interface; `stripe_processor.py` — the built-in Stripe implementation;
  `registry.py` — Stripe plus the `decabill.payment_processors` entry points, resolved by id.
* `service.py` — opening a checkout and receiving webhooks; `settlement.py` — applying a payment (or an
  admin's mark-paid / mark-unpaid) to an invoice, the one place that changes its payment status.
"""

from decabill.payments.base import (
    CheckoutRequest,
    CheckoutSession,
    CustomerRequest,
    PaymentProcessor,
    PaymentStatus,
    PaymentUpdate,
    WebhookEvent,
)
from decabill.payments.errors import CustomerMissing, InvalidWebhook, PaymentProcessorUnavailable, PaymentRefused
from decabill.payments.registry import get_payment_processors, init_payment_processors, reset_payment_processors

__all__ = [
    "CheckoutRequest", "CheckoutSession", "CustomerMissing", "CustomerRequest", "InvalidWebhook", "PaymentProcessor",
    "PaymentProcessorUnavailable", "PaymentRefused", "PaymentStatus", "PaymentUpdate", "WebhookEvent",
    "get_payment_processors", "init_payment_processors", "reset_payment_processors",
]
