"""Service types and provider registry: /service-types.

Not available yet: every operation answers 501 until the catalog capability lands."""

from decabill.errors import CapabilityNotAvailable

CAPABILITY = "Catalog"


async def list_service_types(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def create_service_type(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def get_provider_details(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def get_provider_server_types(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def get_service_type(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def update_service_type(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)


async def delete_service_type(**_kwargs):
    raise CapabilityNotAvailable(CAPABILITY)
