"""Dunning: /admin/billing/dunning-policy and /admin/billing/dunning (services in decabill/dunning/)."""

import uuid

from decabill.dunning import service as dunning
from handlers._http import admin_only, dump, principal


@admin_only
async def get_dunning_policy(token_info: dict):
    return dump(await dunning.get_policy(principal(token_info)), "DunningPolicy"), 200


@admin_only
async def update_dunning_policy(body: dict, token_info: dict):
    found = await dunning.update_policy(principal(token_info), steps=body["steps"], enabled=body.get("enabled", True),
                                        bill_while_suspended=body.get("billWhileSuspended", True))
    return dump(found, "DunningPolicy"), 200


@admin_only
async def admin_list_dunning_customers(token_info: dict, min_level: int = 0, limit: int = 20, offset: int = 0):
    found = await dunning.list_customers(principal(token_info), min_level, limit, offset)
    return dump(found, "PaginatedDunningCustomersResponse"), 200


@admin_only
async def admin_set_dunning_pause(user_id: str, body: dict, token_info: dict):
    found = await dunning.set_pause(principal(token_info), uuid.UUID(user_id), body.get("pausedUntil"),
                                    body.get("reason"))
    return dump(found, "DunningPauseResponse"), 200
