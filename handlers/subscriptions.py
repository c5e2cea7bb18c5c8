"""Subscriptions, items and server control: /subscriptions."""

import uuid

from decabill.subscriptions import service as subscriptions
from handlers._http import dump, dump_list, principal


async def list_subscriptions(token_info: dict, limit: int = 10, offset: int = 0):
    found = await subscriptions.list_subscriptions(principal(token_info), limit, offset)
    return dump_list(found, "SubscriptionResponse"), 200


async def create_subscription(body: dict, token_info: dict):
    created = await subscriptions.create_subscription(
        principal(token_info), uuid.UUID(body["planId"]), body.get("requestedConfig"),
        body.get("preferredAlternatives"), bool(body.get("autoBackorder", False)),
    )
    return dump(created, "SubscriptionResponse"), 201


async def get_subscription(subscription_id: str, token_info: dict):
    found = await subscriptions.get_subscription(principal(token_info), uuid.UUID(subscription_id))
    return dump(found, "SubscriptionResponse"), 200


async def cancel_subscription(subscription_id: str, token_info: dict, body: dict | None = None):
    canceled = await subscriptions.cancel_subscription(principal(token_info), uuid.UUID(subscription_id))
    return dump(canceled, "SubscriptionResponse"), 200


async def resume_subscription(subscription_id: str, token_info: dict, body: dict | None = None):
    resumed = await subscriptions.resume_subscription(principal(token_info), uuid.UUID(subscription_id))
    return dump(resumed, "SubscriptionResponse"), 200


async def list_subscription_items(subscription_id: str, token_info: dict):
    items = await subscriptions.list_items(principal(token_info), uuid.UUID(subscription_id))
    return dump_list(items, "SubscriptionItemResponse"), 200


async def get_subscription_item_server_info(subscription_id: str, item_id: str, token_info: dict):
    info = await subscriptions.get_server_info(principal(token_info), uuid.UUID(subscription_id), uuid.UUID(item_id))
    return dump(info, "ServerInfoResponse"), 200


async def start_subscription_item_server(subscription_id: str, item_id: str, token_info: dict):
    done = await subscriptions.start_server(principal(token_info), uuid.UUID(subscription_id), uuid.UUID(item_id))
    return dump(done, "ServerActionResponse"), 200


async def stop_subscription_item_server(subscription_id: str, item_id: str, token_info: dict):
    done = await subscriptions.stop_server(principal(token_info), uuid.UUID(subscription_id), uuid.UUID(item_id))
    return dump(done, "ServerActionResponse"), 200


async def restart_subscription_item_server(subscription_id: str, item_id: str, token_info: dict):
    done = await subscriptions.restart_server(principal(token_info), uuid.UUID(subscription_id), uuid.UUID(item_id))
    return dump(done, "ServerActionResponse"), 200
