"""Webhooks, the domain's public face: the admin's endpoints (create, list, get, update, delete, rotate the
secret), their delivery log and manual redelivery; and, for the other domains, `record` (the outbox, in the
caller's transaction) with named helpers for the events several domains raise.

The signing secret is shown once: in the answer to create and to rotate (`WebhookEndpointSecretResponse`);
at rest it is encrypted (decabill.secrets).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db, secrets
from decabill.config import get_settings
from decabill.identity.principal import Principal, require_admin
from decabill.jobs.queue import enqueue
from decabill.webhooks import delivery as deliveries_
from decabill.webhooks import signing
from decabill.webhooks.errors import UnknownEventType, WebhookDeliveryNotFound, WebhookEndpointNotFound
from decabill.webhooks.events import CATALOGUE
from decabill.webhooks.outbox import DELIVER_TASK
from decabill.webhooks.outbox import record as record
from decabill.webhooks.outbox import record_many as record_many
from decabill.webhooks.repository import WebhookDeliveryRepository, WebhookEndpointRepository
from models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint


@dataclass(frozen=True)
class EndpointWithSecret:
    """An endpoint and its signing secret in plain text: only the answers to create and rotate carry it."""

    endpoint: WebhookEndpoint
    secret: str

    def __getattr__(self, name: str) -> Any:
        return getattr(self.endpoint, name)


# --- events other domains raise -----------------------------------------------------------------------


async def subscription_suspended(session: AsyncSession, tenant: str, subscription: Any) -> None:
    """Record `subscription.suspended` (dunning suspends a subscription) in the caller's transaction."""
    await record(session, tenant, "subscription.suspended", subscription)


async def subscription_reactivated(session: AsyncSession, tenant: str, subscription: Any) -> None:
    """Record `subscription.reactivated` (a suspended subscription is active again) in the caller's transaction."""
    await record(session, tenant, "subscription.reactivated", subscription)


# --- endpoints ----------------------------------------------------------------------------------------


def _event_types(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in CATALOGUE]
    if unknown:
        raise UnknownEventType(unknown)
    return list(dict.fromkeys(names))


async def _endpoint(session: AsyncSession, endpoint_id: uuid.UUID, *, lock: bool = False) -> WebhookEndpoint:
    found = await WebhookEndpointRepository(session).get(endpoint_id, for_update=lock)
    if found is None:
        raise WebhookEndpointNotFound(endpoint_id)
    return found


async def create_endpoint(principal: Principal, url: str, event_types: list[str], description: str | None,
                          enabled: bool = True) -> EndpointWithSecret:
    require_admin(principal)
    deliveries_.check_url(url)
    secret = signing.new_secret()
    async with db.transaction() as session:
        endpoint = await WebhookEndpointRepository(session).create(WebhookEndpoint(
            url=url, event_types=_event_types(event_types), description=description, enabled=enabled,
            secret=secrets.encrypt(secret)))
    return EndpointWithSecret(endpoint, secret)


async def list_endpoints(principal: Principal, limit: int, offset: int) -> list[WebhookEndpoint]:
    require_admin(principal)
    async with db.transaction() as session:
        return await WebhookEndpointRepository(session).newest_first(limit, offset)


async def get_endpoint(principal: Principal, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    require_admin(principal)
    async with db.transaction() as session:
        return await _endpoint(session, endpoint_id)


async def update_endpoint(principal: Principal, endpoint_id: uuid.UUID, changes: dict[str, Any]) -> WebhookEndpoint:
    """`changes` holds only what the request sets: url, eventTypes, description, enabled (enabling again
    clears the record of failures)."""
    require_admin(principal)
    if "url" in changes:
        deliveries_.check_url(changes["url"])
    async with db.transaction() as session:
        endpoint = await _endpoint(session, endpoint_id, lock=True)
        if "url" in changes:
            endpoint.url = changes["url"]
        if "eventTypes" in changes:
            endpoint.event_types = _event_types(changes["eventTypes"])
        if "description" in changes:
            endpoint.description = changes["description"]
        if "enabled" in changes:
            if changes["enabled"] and not endpoint.enabled:
                endpoint.failing_since, endpoint.disabled_reason = None, None
            endpoint.enabled = bool(changes["enabled"])
        endpoint.touch()
        return endpoint


async def delete_endpoint(principal: Principal, endpoint_id: uuid.UUID) -> None:
    require_admin(principal)
    async with db.transaction() as session:
        await WebhookEndpointRepository(session).remove(await _endpoint(session, endpoint_id, lock=True))


async def rotate_secret(principal: Principal, endpoint_id: uuid.UUID) -> EndpointWithSecret:
    """A new signing secret, used from the next attempt on. The replaced one keeps signing next to it for
    WEBHOOK_SECRET_OVERLAP_HOURS (0: it stops at once), so a receiver can switch whenever it likes."""
    require_admin(principal)
    secret = signing.new_secret()
    overlap = dt.timedelta(hours=get_settings().webhook_secret_overlap_hours)
    async with db.transaction() as session:
        endpoint = await _endpoint(session, endpoint_id, lock=True)
        if overlap:
            endpoint.previous_secret, endpoint.previous_secret_until = endpoint.secret, db.utcnow() + overlap
        else:
            endpoint.previous_secret = endpoint.previous_secret_until = None
        endpoint.secret = secrets.encrypt(secret)
        endpoint.touch()
    return EndpointWithSecret(endpoint, secret)


# --- the delivery log ---------------------------------------------------------------------------------


async def list_deliveries(principal: Principal, endpoint_id: uuid.UUID, limit: int, offset: int) -> list[WebhookDelivery]:
    require_admin(principal)
    async with db.transaction() as session:
        await _endpoint(session, endpoint_id)
        return await WebhookDeliveryRepository(session).of_endpoint(endpoint_id, limit, offset)


async def redeliver(principal: Principal, endpoint_id: uuid.UUID, delivery_id: uuid.UUID) -> WebhookDelivery:
    """Send a delivery again now, whatever its state (one more attempt; a failure is final)."""
    require_admin(principal)
    async with db.transaction() as session:
        await _endpoint(session, endpoint_id)
        found = await WebhookDeliveryRepository(session).get(delivery_id, for_update=True)
        if found is None or found.endpoint_id != endpoint_id:
            raise WebhookDeliveryNotFound(delivery_id)
        found.status, found.next_attempt_at = DeliveryStatus.PENDING, db.utcnow()
        found.touch()
        tenant = found.tenant_id
        db.after_commit(lambda: enqueue(DELIVER_TASK, tenant, str(delivery_id)))
    return found


async def delivery_backlog() -> dict[str, int]:
    """Deliveries pending (waiting for their next attempt) and failed for good, across tenants (metrics)."""
    async with db.read() as session:
        found = await WebhookDeliveryRepository(session).backlog_in_all_tenants()
    return {status: found.get(status, 0) for status in (DeliveryStatus.PENDING, DeliveryStatus.FAILED)}
