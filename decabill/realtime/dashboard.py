"""What a dashboard tick reads (behavior.md part B §8, spec/asyncapi.yaml): the service layer of the
real-time area. The socket plumbing lives in `decabill.realtime.handlers`.

* `check_access`: the socket's user must still exist in the socket's tenant (and not be locked).
* `dashboard_targets`: the user's `active` subscriptions (newest first, at most 1000) and, of each,
  its first item whose provisioning status is `active` — recomputed on every tick from the
  authenticated user, never from anything the client sent.
* `server_status`: the REST `getSubscriptionItemServerInfo` (same service function, so the same
  ownership rules, provider read and snapshot refresh), mapped to a `dashboardStatusUpdate` item; a
  subscription suspended for an unpaid invoice (dunning) carries `suspendedAt` (its server shows `off`).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass
from typing import Any

from decabill import db
from decabill.errors import Forbidden
from decabill.identity.principal import Principal
from decabill.identity.service import find_user
from decabill.subscriptions import service as subscriptions
from decabill.tenancy import current_tenant

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
    """The item of one subscription whose server a dashboard shows."""

    subscription_id: uuid.UUID
    item_id: uuid.UUID
    service: str
    suspended_at: dt.datetime | None = None  # suspended for an unpaid invoice (dunning): its server is stopped


async def _require_user(principal: Principal) -> uuid.UUID:
    user_id = principal.require_user_id()
    user = await find_user(user_id)
    if user is None or (user.tenant_id or "default") != principal.tenant or user.is_locked:
        raise AccessDenied()
    return user_id


async def check_access(principal: Principal) -> None:
    """Raise `UserNotAuthenticated` (API key) or `AccessDenied` (user gone, locked, other tenant)."""
    principal.require_user_id()
    if principal.tenant != current_tenant():
        raise AccessDenied()
    async with db.transaction():
        await _require_user(principal)


async def dashboard_targets(principal: Principal) -> list[Target]:
    principal.require_user_id()
    if principal.tenant != current_tenant():
        raise AccessDenied()
    async with db.transaction():
        user_id = await _require_user(principal)
        servers = await subscriptions.active_servers(user_id, MAX_SUBSCRIPTIONS)
    return [Target(sid, item.id, item.service if item.service in SERVICES else "controller", suspended_at)
            for sid, item, suspended_at in servers]


async def server_status(principal: Principal, target: Target) -> dict[str, Any]:
    """One `dashboardStatusUpdate` item: the REST server-info of `target`, absent fields omitted (never
    null). Raises what the REST operation raises (not provisioned, provider errors, ...)."""
    view = await subscriptions.get_server_info(principal, target.subscription_id, target.item_id)
    status: dict[str, Any] = {
        "subscriptionId": str(target.subscription_id),
        "itemId": str(target.item_id),
        "service": target.service,
        "name": view.name or "",
        "publicIp": view.public_ip or "",
        "status": view.status or "",
    }
    suspended = target.suspended_at.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") \
        if target.suspended_at else None
    optional = {"privateIp": view.private_ip, "metadata": view.metadata, "hostname": view.hostname,
                "hostnameFqdn": view.hostname_fqdn, "suspendedAt": suspended}
    status.update({key: value for key, value in optional.items() if value is not None})
    return status
