"""Admin user management: /users (users and keycloak modes)."""

import uuid

from decabill.identity import service as identity
from handlers._http import admin_only, dump, dump_list, principal


@admin_only
async def list_users(token_info: dict, limit: int = 10, offset: int = 0):
    return dump_list(await identity.list_users(principal(token_info), limit, offset), "UserResponse"), 200


@admin_only
async def create_user(body: dict, token_info: dict):
    user = await identity.create_user(principal(token_info), body["email"], body["password"], body.get("role"))
    return dump(user, "UserResponse"), 201


@admin_only
async def get_user(id_: str, token_info: dict):
    return dump(await identity.get_user(principal(token_info), uuid.UUID(id_)), "UserResponse"), 200


@admin_only
async def update_user(id_: str, body: dict, token_info: dict):
    user = await identity.update_user(
        principal(token_info), uuid.UUID(id_), email=body.get("email"), password=body.get("password"), role=body.get("role")
    )
    return dump(user, "UserResponse"), 200


@admin_only
async def delete_user(id_: str, token_info: dict):
    await identity.delete_user(principal(token_info), uuid.UUID(id_))
    return None, 204


@admin_only
async def lock_user(id_: str, token_info: dict):
    return dump(await identity.set_locked(principal(token_info), uuid.UUID(id_), True), "UserResponse"), 200


@admin_only
async def unlock_user(id_: str, token_info: dict):
    return dump(await identity.set_locked(principal(token_info), uuid.UUID(id_), False), "UserResponse"), 200
