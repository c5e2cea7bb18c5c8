"""Capacity checks: /availability (both operations run the same check)."""

import uuid

from decabill.catalog import service as catalog
from handlers._http import dump, principal


async def check_availability(body: dict, token_info: dict):
    result = await catalog.check_availability(
        principal(token_info), uuid.UUID(body["serviceTypeId"]), body["region"], body["serverType"],
        body.get("requestedConfig"),
    )
    return dump(result, "AvailabilityResponse"), 200


async def check_availability_alternatives(body: dict, token_info: dict):
    return await check_availability(body=body, token_info=token_info)
