"""Price preview: /pricing.

Not available yet: every operation answers 501 until the catalog capability lands."""

from decabill.errors import CapabilityNotAvailable

CAPABILITY = "Catalog"


async def preview_pricing(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)
