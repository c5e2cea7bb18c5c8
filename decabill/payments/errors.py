"""Errors of payments (messages from behavior.md part B §6, spec/openapi.yaml)."""

from __future__ import annotations

from decabill.errors import BadRequest, ServiceUnavailable


class PaymentInvoiceNotFound(BadRequest):
    """Unknown invoice, or one of another user or tenant: the contract's 400 (not 404) for the pay routes."""

    def __init__(self) -> None:
        super().__init__("Invoice not found")


class InvoiceNotPayable(BadRequest):
    """D13: only issued, partially paid and overdue invoices can be paid."""

    def __init__(self) -> None:
        super().__init__("Invoice is not payable")


class NothingToPay(BadRequest):
    def __init__(self) -> None:
        super().__init__("Nothing to pay")


class PaymentProcessorNotFound(BadRequest):
    """The invoice names a processor that is not registered (the reference answered 500 with this text)."""

    def __init__(self, processor_id: str, available: list[str]) -> None:
        super().__init__(f"Payment processor '{processor_id}' not found. Available: {', '.join(available) or 'none'}")


class PaymentProcessorNotConfigured(BadRequest):
    """The operator has not configured the processor (e.g. STRIPE_SECRET_KEY): a 400 naming what to set,
    like an unconfigured provisioning provider, instead of the reference's 500."""


class PaymentRefused(BadRequest):
    """The processor refused to open the checkout (e.g. an amount below its minimum)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Failed to create checkout session: {detail}")


class PaymentProcessorUnavailable(ServiceUnavailable):
    """The processor could not be reached or failed (network, 5xx, rate limit); the request may be retried:
    the retry reuses the same payment attempt and idempotency key, so no second session is made."""

    def __init__(self) -> None:
        super().__init__("Payment provider is temporarily unavailable, please try again")


class CheckoutSuperseded(ServiceUnavailable):
    """The invoice changed twice while its checkout was being opened (concurrent payments or pay requests)."""

    def __init__(self) -> None:
        super().__init__("The invoice changed while the checkout was opened, please try again")


class WebhookFailed(BadRequest):
    """Any failure of a webhook delivery — bad signature, unreadable event, processing error. The reason is
    logged, never sent back (behavior.md §6.3); the processor delivers the event again later."""

    def __init__(self) -> None:
        super().__init__("Webhook processing failed")


class InvalidWebhook(Exception):
    """Raised by a processor's `parse_webhook` for a delivery that fails verification or cannot be read."""


class CustomerMissing(Exception):
    """The customer id stored on the profile is unknown to the processor (deleted there): make a new one."""
