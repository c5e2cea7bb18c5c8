"""The caller's billing profile: /customer-profile.

Not available yet: every operation answers 501 until the subscriptions capability lands."""

from decabill.errors import CapabilityNotAvailable

CAPABILITY = "Subscriptions"


async def get_customer_profile(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def update_customer_profile(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)
