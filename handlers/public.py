"""Public catalog: /public/service-plan-offerings.

Not available yet: every operation answers 501 until the catalog capability lands."""

from decabill.errors import CapabilityNotAvailable

CAPABILITY = "Catalog"


async def list_public_service_plan_offerings(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def get_cheapest_public_service_plan_offering(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)
