"""Payments: Stripe Checkout for an invoice's open balance, and signed, idempotent webhooks
(behavior.md part B §6; D13–D15).

* `base.py` — the `PaymentProcessor` interface; `stripe_processor.py` — the built-in Stripe implementation;
  `registry.py` — Stripe plus the `decabill.payment_processors` entry points, resolved by id.
* `service.py` — opening a checkout and receiving webhooks; `settlement.py` — applying a payment (or an
  admin's mark-paid / mark-unpaid) to an invoice, the one place that changes its payment status.
* `checkouts.py` — closing superseded checkouts at the processor (a newer checkout, or a changed open balance),
  imported here: importing the package installs the listener on invoice balances; `tasks.py` — the job that
  retries it (registered through `decabill.jobs.queue.TASK_MODULES`, like every job).
"""

from decabill.payments.base import (
    CheckoutClosure,
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
from decabill.payments import checkouts  # noqa: F401 - after the registry: installs the listener, see above

__all__ = [
    "CheckoutClosure", "CheckoutRequest", "CheckoutSession", "CustomerMissing", "CustomerRequest", "InvalidWebhook",
    "PaymentProcessor", "PaymentProcessorUnavailable", "PaymentRefused", "PaymentStatus", "PaymentUpdate",
    "WebhookEvent", "get_payment_processors", "init_payment_processors", "reset_payment_processors",
]
