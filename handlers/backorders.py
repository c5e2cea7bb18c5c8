"""Backorders: /backorders.

Not available yet: every operation answers 501 until the subscriptions capability lands."""

from decabill.errors import CapabilityNotAvailable

CAPABILITY = "Subscriptions"


async def list_backorders(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def retry_backorder(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def cancel_backorder(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)
