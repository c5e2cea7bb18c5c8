"""Service plans: /service-plans."""

import uuid

import inflection

from decabill.catalog import service as catalog
from handlers._http import admin_only, dump, dump_list, principal


def _fields(body: dict) -> dict:
    fields = {inflection.underscore(name): value for name, value in body.items()}
    if "service_type_id" in fields:
        fields["service_type_id"] = uuid.UUID(fields["service_type_id"])  # format: uuid checked by the spec
    return fields


async def list_service_plans(token_info: dict, limit: int = 10, offset: int = 0, service_type_id: str | None = None):
    plans = await catalog.list_service_plans(principal(token_info), limit, offset,
                                             uuid.UUID(service_type_id) if service_type_id else None)
    return dump_list(plans, "ServicePlanResponse"), 200


@admin_only
async def create_service_plan(body: dict, token_info: dict):
    return dump(await catalog.create_service_plan(principal(token_info), **_fields(body)), "ServicePlanResponse"), 201


async def get_service_plan(id_: str, token_info: dict):
    return dump(await catalog.get_service_plan(principal(token_info), uuid.UUID(id_)), "ServicePlanResponse"), 200


@admin_only
async def update_service_plan(id_: str, body: dict, token_info: dict):
    updated = await catalog.update_service_plan(principal(token_info), uuid.UUID(id_), **_fields(body))
    return dump(updated, "ServicePlanResponse"), 200


@admin_only
async def delete_service_plan(id_: str, token_info: dict):
    await catalog.delete_service_plan(principal(token_info), uuid.UUID(id_))
    return None, 204
