"""What a dashboard tick reads (behavior.md part B §8, spec/asyncapi.yaml): the service layer of the
real-time area. The socket plumbing lives in `decabill.realtime.handlers`.

* `load_watch_lists`: for many users at once (one transaction, two queries), each user's `active`
  subscriptions (newest first, at most 1000) and, of each, its first item whose provisioning status is
  `active` — recomputed from the authenticated users, never from anything a client sent; None for a user
  that is gone or locked.
* `server_status`: the REST `getSubscriptionItemServerInfo` content (same provider read and snapshot
  refresh, the ownership established by the load), mapped to a `dashboardStatusUpdate` item.
  A subscription suspended for an unpaid invoice (dunning) carries `suspendedAt` (its server shows `off`).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass
from typing import Any

from decabill import db
from decabill.errors import Forbidden
from decabill.identity.service import find_users
from decabill.subscriptions import service as subscriptions

MIN_INTERVAL_MS = 10_000
MAX_INTERVAL_MS = 120_000
FALLBACK_INTERVAL_MS = 15_000
MAX_SUBSCRIPTIONS = 1000
SERVICES = ("controller", "manager")  # the message's enum; anything else is reported as a controller


class AccessDenied(Forbidden):
    def __init__(self) -> None:
        super().__init__("Access denied")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def poll_interval_ms(requested: object, default: object) -> int:
    """`pollIntervalMs` clamped to 10 000–120 000; without a number, `STATUS_POLL_INTERVAL` (15 000 if
    that is not a number either), clamped the same way."""
    value = _number(requested)
    if value is None:
        value = _number(default)
    if value is None:
        value = FALLBACK_INTERVAL_MS
    return int(min(max(value, MIN_INTERVAL_MS), MAX_INTERVAL_MS))


@dataclass(frozen=True)
class Target:
    """The item of one subscription whose server a dashboard shows (and what reading it needs)."""

    subscription_id: uuid.UUID
    item_id: uuid.UUID
    service: str
    server: subscriptions.WatchedServer


async def load_watch_lists(user_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Target] | None]:
    """What the dashboards of many users of the bound tenant show, in one transaction of two queries (the
    users, their servers) whatever the number of users and sockets: per user its targets, or None when the
    user is gone or locked (`Access denied`)."""
    async with db.transaction():
        users = await find_users(user_ids)
        allowed = [uid for uid in user_ids if uid in users and not users[uid].is_locked]
        servers = await subscriptions.watched_servers(allowed, MAX_SUBSCRIPTIONS)
    out: dict[uuid.UUID, list[Target] | None] = {uid: None for uid in user_ids}
    for uid in allowed:
        out[uid] = [Target(s.subscription_id, s.item_id, s.service if s.service in SERVICES else "controller", s)
                    for s in servers[uid]]
    return out


async def owner_of(subscription_id: uuid.UUID) -> uuid.UUID | None:
    """The user of a subscription of the bound tenant (a change that named none)."""
    return await subscriptions.owner_of(subscription_id)


async def store_snapshot(item_id: uuid.UUID, snapshot: dict[str, Any]) -> None:
    await subscriptions.store_watched_snapshot(item_id, snapshot)


async def server_status(target: Target) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One `dashboardStatusUpdate` item: the REST server-info of `target` (read without a query), absent
    fields omitted (never null), and the snapshot to store if it changed (`store_snapshot`). Raises what the
    REST operation raises (not provisioned, provider errors, ...)."""
    view, snapshot = await subscriptions.read_watched_server(target.server)
    status: dict[str, Any] = {
        "subscriptionId": str(target.subscription_id),
        "itemId": str(target.item_id),
        "service": target.service,
        "name": view.name or "",
        "publicIp": view.public_ip or "",
        "status": view.status or "",
    }
    suspended_at = target.server.suspended_at
    suspended = suspended_at.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if suspended_at else None
    optional = {"privateIp": view.private_ip, "metadata": view.metadata, "hostname": view.hostname,
                "hostnameFqdn": view.hostname_fqdn, "suspendedAt": suspended}
    status.update({key: value for key, value in optional.items() if value is not None})
    return status, snapshot
