"""Service types and the provider registry: /service-types."""

import uuid

import inflection

from decabill.catalog import service as catalog
from handlers._http import admin_only, dump, dump_list, principal


def _fields(body: dict) -> dict:
    return {inflection.underscore(name): value for name, value in body.items()}


async def list_service_types(token_info: dict, limit: int = 10, offset: int = 0):
    types = await catalog.list_service_types(principal(token_info), limit, offset)
    return dump_list(types, "ServiceTypeResponse"), 200


@admin_only
async def create_service_type(body: dict, token_info: dict):
    created = await catalog.create_service_type(principal(token_info), **_fields(body))
    return dump(created, "ServiceTypeResponse"), 201


async def get_provider_details(token_info: dict):
    return dump_list(catalog.provider_details(principal(token_info)), "ProviderDetail"), 200


async def get_provider_server_types(provider_id: str, token_info: dict):
    server_types = await catalog.provider_server_types(principal(token_info), provider_id)
    return dump_list(server_types, "ServerType"), 200


async def get_service_type(id_: str, token_info: dict):
    return dump(await catalog.get_service_type(principal(token_info), uuid.UUID(id_)), "ServiceTypeResponse"), 200


@admin_only
async def update_service_type(id_: str, body: dict, token_info: dict):
    updated = await catalog.update_service_type(principal(token_info), uuid.UUID(id_), **_fields(body))
    return dump(updated, "ServiceTypeResponse"), 200


@admin_only
async def delete_service_type(id_: str, token_info: dict):
    await catalog.delete_service_type(principal(token_info), uuid.UUID(id_))
    return None, 204
