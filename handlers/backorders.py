"""Backorders: /backorders."""

import uuid

from decabill.subscriptions import service as subscriptions
from handlers._http import dump, dump_list, principal


async def list_backorders(token_info: dict, limit: int = 10, offset: int = 0):
    found = await subscriptions.list_backorders(principal(token_info), limit, offset)
    return dump_list(found, "BackorderResponse"), 200


async def retry_backorder(id_: str, token_info: dict, body: dict | None = None):
    retried = await subscriptions.retry_backorder(principal(token_info), uuid.UUID(id_))
    return dump(retried, "BackorderResponse"), 200


async def cancel_backorder(id_: str, token_info: dict, body: dict | None = None):
    cancelled = await subscriptions.cancel_backorder(principal(token_info), uuid.UUID(id_))
    return dump(cancelled, "BackorderResponse"), 200
