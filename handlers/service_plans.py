"""Service plans: /service-plans.

Not available yet: every operation answers 501 until the catalog capability lands."""

from decabill.errors import CapabilityNotAvailable

CAPABILITY = "Catalog"


async def list_service_plans(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def create_service_plan(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def get_service_plan(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def update_service_plan(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def delete_service_plan(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)
