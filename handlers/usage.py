"""Usage records: /usage.

Not available yet: every operation answers 501 until the invoicing capability lands."""

from decabill.errors import CapabilityNotAvailable

CAPABILITY = "Invoicing"


async def get_usage_summary(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def record_usage(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)
