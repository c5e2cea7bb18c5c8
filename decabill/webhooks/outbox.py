"""The outbox: an event is written in the transaction of the change that caused it, with one pending delivery
per endpoint that asked for its type. So there is no event without its change and no change without its event,
whatever crashes when; delivering is the job layer's business afterwards (`webhooks.deliver`, sent right after
the commit, and `webhooks.deliver_due`, which finds whatever was not sent or not finished).

Services call `record(session, tenant, "invoice.paid", invoice_view)` with their own session, inside their
transaction; the payload is shaped with the event type's contract schema (`events.CATALOGUE`).
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.jobs.queue import enqueue
from decabill.shapes import dump
from decabill.tenancy import bound_tenant
from decabill.webhooks.events import CATALOGUE
from decabill.webhooks.repository import WebhookDeliveryRepository, WebhookEndpointRepository, WebhookEventRepository
from models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEvent

log = structlog.get_logger("decabill.webhooks")

DELIVER_TASK = "webhooks.deliver"


async def record(session: AsyncSession, tenant: str, event_type: str, subject: Any) -> WebhookEvent | None:
    """Record the event `event_type` about `subject` (a row or view shaped with the type's schema, or an
    already shaped dict) in the caller's transaction, with a delivery per enabled endpoint that asked for the
    type; None (nothing written) when no endpoint asked for it."""
    kind = CATALOGUE.get(event_type)
    if kind is None:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    with bound_tenant(tenant):
        endpoints = await WebhookEndpointRepository(session).subscribed_to(event_type)
        if not endpoints:  # nobody listens: nothing to keep (most changes of a tenant without webhooks)
            return None
        payload = subject if isinstance(subject, dict) else dump(subject, kind.schema)
        event = await WebhookEventRepository(session).create(WebhookEvent(type=event_type, payload=payload))
        deliveries = WebhookDeliveryRepository(session)
        created = [deliveries.add(WebhookDelivery(event_id=event.id, endpoint_id=endpoint.id, event_type=event_type,
                                                  status=DeliveryStatus.PENDING, next_attempt_at=db.utcnow()))
                   for endpoint in endpoints]
        await session.flush()
    for delivery in created:
        db.after_commit(_sender(tenant, delivery.id))
    return event


async def record_many(session: AsyncSession, tenant: str, event_type: str, subjects: list[Any]) -> None:
    """`record` of one event type about many subjects at once (the billing day's batch): the endpoints are
    looked up once and the events and deliveries written at the caller's next flush."""
    kind = CATALOGUE.get(event_type)
    if kind is None:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    with bound_tenant(tenant):
        endpoints = await WebhookEndpointRepository(session).subscribed_to(event_type)
        if not endpoints or not subjects:
            return
        events = [WebhookEventRepository(session).add(WebhookEvent(
            id=uuid.uuid4(), type=event_type, payload=subject if isinstance(subject, dict) else dump(subject, kind.schema)))
            for subject in subjects]
        await session.flush()  # the events before the deliveries that point at them
        deliveries = WebhookDeliveryRepository(session)
        created = [deliveries.add(WebhookDelivery(id=uuid.uuid4(), event_id=event.id, endpoint_id=endpoint.id,
                                                  event_type=event_type, status=DeliveryStatus.PENDING,
                                                  next_attempt_at=db.utcnow()))
                   for event in events for endpoint in endpoints]
    for delivery in created:
        db.after_commit(_sender(tenant, delivery.id))


def _sender(tenant: str, delivery_id: uuid.UUID):
    async def send() -> None:
        try:
            await enqueue(DELIVER_TASK, tenant, str(delivery_id))
        except Exception as exc:  # noqa: BLE001 - the change is committed; webhooks.deliver_due sends it later
            log.warning("webhooks.enqueue_failed", tenant=tenant, error=str(exc), error_type=type(exc).__name__)

    return send
