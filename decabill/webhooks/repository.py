from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func

from decabill.repository import Repository
from models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent


class WebhookEndpointRepository(Repository[WebhookEndpoint]):
    model = WebhookEndpoint

    async def newest_first(self, limit: int | None, offset: int | None) -> list[WebhookEndpoint]:
        return await self.page(self.statement().order_by(WebhookEndpoint.created_at.desc(), WebhookEndpoint.id),
                               limit, offset)

    async def subscribed_to(self, event_type: str) -> list[WebhookEndpoint]:
        """The enabled endpoints that asked for `event_type`, oldest first (the order their deliveries are written and
        sent in); filtered here: a tenant has a handful of endpoints, and JSON containment differs between the
        backends."""
        enabled = await self.all(self.statement().where(WebhookEndpoint.enabled.is_(True))
                                 .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id))
        return [e for e in enabled if event_type in (e.event_types or [])]


class WebhookEventRepository(Repository[WebhookEvent]):
    model = WebhookEvent


class WebhookDeliveryRepository(Repository[WebhookDelivery]):
    model = WebhookDelivery

    async def of_endpoint(self, endpoint_id: uuid.UUID, limit: int | None, offset: int | None) -> list[WebhookDelivery]:
        statement = self.statement().where(WebhookDelivery.endpoint_id == endpoint_id)
        return await self.page(statement.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id), limit, offset)

    async def backlog_in_all_tenants(self) -> dict[str, int]:
        """Across every tenant (the operator's metrics): deliveries still pending and given up, by status."""
        statement = (self.in_any_tenant(WebhookDelivery.status, func.count())
                     .where(WebhookDelivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.FAILED]))
                     .group_by(WebhookDelivery.status))
        return {status: int(count) for status, count in await self.rows(statement)}

    async def due_ids(self, now: dt.datetime, limit: int) -> list[uuid.UUID]:
        """Pending deliveries whose attempt is due, longest due first; the deliveries of one change share their
        `next_attempt_at`, so the id decides among them (which of them a full batch leaves for the next run)."""
        statement = self.statement(WebhookDelivery.id).where(
            WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= now,
        ).order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        return await self.page(statement, limit, 0)
