"""Outbound webhook endpoints and their delivery log (admins): /admin/webhook-endpoints."""

import uuid

from decabill.webhooks import service as webhooks
from handlers._http import admin_only, dump, dump_list, principal


@admin_only
async def list_webhook_endpoints(token_info: dict, limit: int = 10, offset: int = 0):
    found = await webhooks.list_endpoints(principal(token_info), limit, offset)
    return dump_list(found, "WebhookEndpointResponse"), 200


@admin_only
async def create_webhook_endpoint(body: dict, token_info: dict):
    created = await webhooks.create_endpoint(principal(token_info), body["url"], body["eventTypes"],
                                             body.get("description"), body.get("enabled", True))
    return dump(created, "WebhookEndpointSecretResponse"), 201


@admin_only
async def get_webhook_endpoint(endpoint_id: str, token_info: dict):
    found = await webhooks.get_endpoint(principal(token_info), uuid.UUID(endpoint_id))
    return dump(found, "WebhookEndpointResponse"), 200


@admin_only
async def update_webhook_endpoint(endpoint_id: str, body: dict, token_info: dict):
    updated = await webhooks.update_endpoint(principal(token_info), uuid.UUID(endpoint_id), body)
    return dump(updated, "WebhookEndpointResponse"), 200


@admin_only
async def delete_webhook_endpoint(endpoint_id: str, token_info: dict):
    await webhooks.delete_endpoint(principal(token_info), uuid.UUID(endpoint_id))
    return None, 204


@admin_only
async def rotate_webhook_endpoint_secret(endpoint_id: str, token_info: dict):
    rotated = await webhooks.rotate_secret(principal(token_info), uuid.UUID(endpoint_id))
    return dump(rotated, "WebhookEndpointSecretResponse"), 200


@admin_only
async def list_webhook_deliveries(endpoint_id: str, token_info: dict, limit: int = 10, offset: int = 0):
    found = await webhooks.list_deliveries(principal(token_info), uuid.UUID(endpoint_id), limit, offset)
    return dump_list(found, "WebhookDeliveryResponse"), 200


@admin_only
async def redeliver_webhook(endpoint_id: str, delivery_id: str, token_info: dict):
    sent = await webhooks.redeliver(principal(token_info), uuid.UUID(endpoint_id), uuid.UUID(delivery_id))
    return dump(sent, "WebhookDeliveryResponse"), 200
