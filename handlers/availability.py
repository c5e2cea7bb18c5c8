"""Capacity checks: /availability.

Not available yet: every operation answers 501 until the catalog capability lands."""

from decabill.errors import CapabilityNotAvailable

CAPABILITY = "Catalog"


async def check_availability(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def check_availability_alternatives(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)
