"""Public catalog: /public/service-plan-offerings (no authentication; X-Tenant selects the tenant)."""

import uuid

from decabill.catalog import service as catalog
from handlers._http import dump, dump_list


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


async def list_public_service_plan_offerings(limit: int = 50, offset: int = 0, service_type_id: str | None = None):
    offerings = await catalog.list_public_offerings(limit, offset, _uuid(service_type_id))
    return dump_list(offerings, "PublicServicePlanOffering"), 200


async def get_cheapest_public_service_plan_offering(service_type_id: str | None = None):
    return dump(await catalog.cheapest_public_offering(_uuid(service_type_id)), "PublicServicePlanOffering"), 200
