from __future__ import annotations

import uuid

from decabill.errors import BadRequest, NotFound


class WebhookEndpointNotFound(NotFound):
    def __init__(self, endpoint_id: uuid.UUID) -> None:
        super().__init__(f"Webhook endpoint with ID {endpoint_id} not found")


class WebhookDeliveryNotFound(NotFound):
    def __init__(self, delivery_id: uuid.UUID) -> None:
        super().__init__(f"Webhook delivery with ID {delivery_id} not found")


class WebhookUrlRefused(BadRequest):
    """The URL is not one Decabill may call (scheme, or an address inside the network: the SSRF guard)."""


class UnknownEventType(BadRequest):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"Unknown event types: {', '.join(names)}")
