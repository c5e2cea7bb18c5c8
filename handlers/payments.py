"""Payments: invoice checkout and the Stripe webhook.

Not available yet: every operation answers 501 until the payments capability lands."""

from decabill.errors import CapabilityNotAvailable

CAPABILITY = "Payments"


async def initiate_invoice_payment_by_ref(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def initiate_invoice_payment(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def stripe_payment_webhook(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)
