"""Public catalog: /public/service-plan-offerings (no authentication; X-Tenant selects the tenant).

Both answers are cached encoded (decabill/catalog/public_cache.py) and carry an ETag: a client that sends it
back in `If-None-Match` gets `304 Not Modified` without a body.
"""

import uuid

import orjson

from decabill.catalog import service as catalog
from handlers._http import cacheable_json, dump, dump_list


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


async def list_public_service_plan_offerings(limit: int = 50, offset: int = 0, service_type_id: str | None = None):
    async def build() -> bytes:
        offerings = await catalog.list_public_offerings(limit, offset, _uuid(service_type_id))
        return orjson.dumps(dump_list(offerings, "PublicServicePlanOffering"))

    return cacheable_json(await catalog.cached_public_answer(("offerings", limit, offset, service_type_id), build))


async def get_cheapest_public_service_plan_offering(service_type_id: str | None = None):
    async def build() -> bytes:
        cheapest = await catalog.cheapest_public_offering(_uuid(service_type_id))
        return orjson.dumps(dump(cheapest, "PublicServicePlanOffering"))

    return cacheable_json(await catalog.cached_public_answer(("cheapest", service_type_id), build))
