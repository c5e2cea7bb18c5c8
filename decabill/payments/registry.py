"""The payment processor registry: the built-in Stripe processor, then the plugins of the
`decabill.payment_processors` entry points (loaded with `decabill.providers.plugins`), by id — a plugin with
the id `stripe` replaces the built-in. Process-wide, rebuilt when the settings object changes (tests).

Which processor takes a payment: the invoice's `payment_processor` (set at issue from
BILLING_DEFAULT_PAYMENT_PROCESSOR), else BILLING_DEFAULT_PAYMENT_PROCESSOR, else `stripe` (behavior.md §6.1).
"""

from __future__ import annotations

from decabill.config import Settings, get_settings
from decabill.payments.base import PaymentProcessor
from decabill.payments.errors import PaymentProcessorNotFound
from decabill.payments.stripe_processor import StripeProcessor
from decabill.providers.plugins import load_payment_processors

MAX_ID_LENGTH = 50  # invoices.payment_processor, payment_attempts.processor


def as_processor(obj: object) -> PaymentProcessor:
    """Accept a PaymentProcessor subclass (constructed without arguments), an instance, or a zero-argument
    factory returning one; check what the payments service relies on."""
    if isinstance(obj, type):
        if not issubclass(obj, PaymentProcessor):
            raise TypeError(f"{obj.__qualname__} is not a decabill PaymentProcessor subclass")
        obj = obj()
    elif not isinstance(obj, PaymentProcessor) and callable(obj):
        obj = obj()
    if not isinstance(obj, PaymentProcessor):
        raise TypeError(f"{type(obj).__qualname__} is not a decabill PaymentProcessor")
    processor_id = getattr(obj, "id", None)
    if not isinstance(processor_id, str) or not processor_id.strip() or len(processor_id) > MAX_ID_LENGTH:
        raise ValueError(f"payment processor id must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    if not isinstance(getattr(obj, "display_name", None), str) or not obj.display_name.strip():
        raise ValueError("payment processor display_name must be a non-empty string")
    field = obj.customer_profile_field
    if field is not None and field != "stripe_customer_id":
        raise ValueError("customer_profile_field must be None or 'stripe_customer_id'")
    if field is not None and type(obj).create_customer is PaymentProcessor.create_customer:
        # Checked when the plugin loads, not when the first customer pays.
        raise ValueError("a payment processor with customer_profile_field must implement create_customer")
    return obj


class PaymentProcessorRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._processors: dict[str, PaymentProcessor] = {}

    def register(self, processor: PaymentProcessor) -> None:
        self._processors[processor.id] = processor

    def ids(self) -> list[str]:
        return list(self._processors)

    def require(self, processor_id: str) -> PaymentProcessor:
        processor = self._processors.get(processor_id)
        if processor is None:
            raise PaymentProcessorNotFound(processor_id, self.ids())
        return processor

    def get(self, processor_id: str) -> PaymentProcessor | None:
        return self._processors.get(processor_id)

    def for_invoice(self, invoice_processor: str | None) -> PaymentProcessor:
        return self.require(invoice_processor or self.settings.billing_default_payment_processor or "stripe")


def build_registry(settings: Settings) -> PaymentProcessorRegistry:
    """Stripe, then the entry points. Raises `PluginLoadError` for a broken plugin when
    `DYNAMIC_PROVIDERS_FAIL_FAST=true`."""
    registry = PaymentProcessorRegistry(settings)
    registry.register(StripeProcessor(settings))
    for processor in load_payment_processors(as_processor, fail_fast=settings.dynamic_providers_fail_fast):
        registry.register(processor)
    return registry


_current: PaymentProcessorRegistry | None = None


def init_payment_processors(settings: Settings | None = None) -> PaymentProcessorRegistry:
    """Build the registry now (at start-up, so a broken plugin under fail-fast stops the process)."""
    global _current
    _current = build_registry(settings or get_settings())
    return _current


def get_payment_processors() -> PaymentProcessorRegistry:
    settings = get_settings()
    if _current is None or _current.settings is not settings:
        return init_payment_processors(settings)
    return _current


def reset_payment_processors() -> None:
    global _current
    _current = None
