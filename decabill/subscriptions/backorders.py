"""Backorders: orders waiting for provider capacity (behavior.md part A §6.9, decision D4).

A backorder belongs to the `pending_backorder` subscription the order created; fulfilling it
provisions *that* subscription (→ `active`, first period from the moment of fulfilment), cancelling it
ends it (→ `canceled`). Statuses: `pending` (never retried), `retrying` (a retry found no capacity or
failed; `failureReason` says why and `retryAfter` when the job tries next, backing off exponentially
from BACKORDER_RETRY_INTERVAL_MS up to an hour), `fulfilled`, `cancelled`.

Exactly once: every attempt — the retry job's and `POST /backorders/{id}/retry` alike — holds the
lease `backorder:<id>` while it talks to the provider. An attempt that died (crash, deploy) after it
reserved the hostname leaves the item `pending` with it; the next attempt first asks the provider for a
server labelled with the item's id and adopts it instead of creating a second one, and deletes what a
failed attempt left (`provisioning.resume`). The job skips a backorder someone else holds;
the API waits for the running attempt (up to RETRY_WAIT_SECONDS) and then answers with its outcome
(a backorder fulfilled meanwhile is returned as it is). Retrying a `cancelled` backorder is 400.

Who may act: the owner, or an admin of the tenant (retry and cancel); lists show the caller's own.
Anyone else gets 404, as for a backorder that does not exist. The requested configuration is returned
with secret-looking values (passwords, tokens, keys) redacted; at rest it is encrypted.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from decabill import db, secrets
from decabill.config import get_settings
from decabill.errors import BadRequest, DecabillError
from decabill.identity.principal import Principal
from decabill.jobs import leases
from decabill.providers import AvailabilityResult
from decabill.subscriptions import errors, provisioning, suspension
from decabill.subscriptions.configuration import redact
from decabill.subscriptions.lifecycle import announce_created, end_now, new_subscription, start_first_period
from decabill.subscriptions.provisioning import OrderContext
from decabill.subscriptions.repository import BackorderRepository, SubscriptionItemRepository, SubscriptionRepository
from decabill.tenancy import current_tenant
from decabill.webhooks import service as webhooks
from models.subscriptions import (
    Backorder,
    BackorderStatus,
    ProvisioningStatus,
    Subscription,
    SubscriptionStatus,
)

log = structlog.get_logger("decabill.subscriptions")

RETRY_WAIT_SECONDS = 30.0
LEASE_TTL = dt.timedelta(minutes=10)
MAX_BACKOFF = dt.timedelta(hours=1)
REASON_LENGTH = 255


def lease_name(backorder_id: uuid.UUID) -> str:
    return f"backorder:{backorder_id}"


@dataclass(frozen=True)
class BackorderView:
    """Serialised through the spec's `BackorderResponse`."""

    id: uuid.UUID
    user_id: uuid.UUID
    service_type_id: uuid.UUID
    plan_id: uuid.UUID
    status: str
    failure_reason: str | None
    requested_config_snapshot: dict[str, Any]
    provider_errors: dict[str, Any]
    preferred_alternatives: dict[str, Any]
    retry_after: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    subscription_id: uuid.UUID


def view(backorder: Backorder) -> BackorderView:
    requested = secrets.decrypt_json(backorder.requested_config_snapshot) or {}
    return BackorderView(
        id=backorder.id, user_id=backorder.user_id, service_type_id=backorder.service_type_id, plan_id=backorder.plan_id,
        status=backorder.status, failure_reason=backorder.failure_reason, requested_config_snapshot=redact(requested),
        provider_errors=dict(backorder.provider_errors or {}),
        preferred_alternatives=dict(backorder.preferred_alternatives or {}), retry_after=backorder.retry_after,
        created_at=backorder.created_at, updated_at=backorder.updated_at, subscription_id=backorder.subscription_id,
    )


def _reason(text: str | None) -> str:
    return (text or "Configuration not available")[:REASON_LENGTH]


# --- creation (from an order) ------------------------------------------------------------------------------


def _new_backorder(subscription: Subscription, ctx: OrderContext, reason: str | None,
                   suggestions: dict[str, Any] | None, preferred: dict[str, Any] | None) -> Backorder:
    return Backorder(
        user_id=subscription.user_id, subscription_id=subscription.id,
        service_type_id=ctx.service_type.id, plan_id=ctx.plan.id,
        requested_config_snapshot=secrets.encrypt_json(ctx.requested), status=BackorderStatus.PENDING,
        failure_reason=_reason(reason), provider_errors={"reason": _reason(reason)},
        # the provider's suggestions (availableTypes/availableRegions), then what the customer said they accept
        preferred_alternatives={**(suggestions or {}), **(preferred or {})},
    )


async def order_as_backorder(user_id: uuid.UUID, ctx: OrderContext, capacity: AvailabilityResult,
                             preferred: dict[str, Any] | None) -> Subscription:
    """No capacity and `autoBackorder` (D4): a `pending_backorder` subscription with one backorder."""
    async with db.transaction() as session:
        subscription, _item = await new_subscription(session, user_id, ctx, status=SubscriptionStatus.PENDING_BACKORDER)
        await announce_created(session, subscription)
        backorder = await BackorderRepository(session).create(_new_backorder(
            subscription, ctx, capacity.reason, capacity.alternatives, preferred))
        await webhooks.record(session, current_tenant(), "backorder.created", view(backorder))
    log.info("subscriptions.backorder_created", subscription=subscription.number, reason=_reason(capacity.reason))
    return subscription


async def backorder_after_failure(subscription_id: uuid.UUID, ctx: OrderContext, reason: str,
                                  preferred: dict[str, Any] | None) -> Subscription:
    """Capacity was there but the server could not be created, and the customer asked to wait: the
    subscription goes back to `pending_backorder` (no period, no price yet) with a backorder."""
    async with db.transaction() as session:
        subscription = await SubscriptionRepository(session).get(subscription_id, for_update=True)
        assert subscription is not None
        subscription.status = SubscriptionStatus.PENDING_BACKORDER
        subscription.current_period_start = subscription.current_period_end = subscription.next_billing_at = None
        subscription.activated_at = None
        subscription.period_price = None
        subscription.touch()
        for item in await SubscriptionItemRepository(session).of_subscription(subscription.id, for_update=True):
            _reset_item(item)
        backorder = await BackorderRepository(session).create(_new_backorder(subscription, ctx, reason, None, preferred))
        await webhooks.record(session, current_tenant(), "backorder.created", view(backorder))
    log.info("subscriptions.backorder_created", subscription=subscription.number, reason=_reason(reason))
    return subscription


def _reset_item(item) -> None:
    item.provisioning_status = ProvisioningStatus.PENDING
    item.ssh_private_key = item.ssh_public_key = item.ssh_host_public_key = None
    item.touch()


# --- reading --------------------------------------------------------------------------------------------


async def list_backorders(principal: Principal, limit: int = 10, offset: int = 0) -> list[BackorderView]:
    user_id = principal.require_user_id()
    async with db.transaction() as session:
        return [view(b) for b in await BackorderRepository(session).of_user(user_id, limit, offset)]


async def _accessible(principal: Principal, backorder_id: uuid.UUID) -> Backorder:
    user_id = principal.require_user_id()
    async with db.transaction() as session:
        backorder = await BackorderRepository(session).get(backorder_id)
    if backorder is None or (backorder.user_id != user_id and not principal.is_admin):
        raise errors.BackorderNotFound(backorder_id)
    return backorder


# --- retry ------------------------------------------------------------------------------------------------


async def retry_backorder(principal: Principal, backorder_id: uuid.UUID) -> BackorderView:
    """`POST /backorders/{id}/retry`: try now, whatever `retryAfter` says."""
    await _accessible(principal, backorder_id)
    async with leases.hold(lease_name(backorder_id), LEASE_TTL, wait=RETRY_WAIT_SECONDS) as held:
        if not held:
            raise errors.BackorderBusy(backorder_id)
        return view(await _attempt(backorder_id, manual=True))


async def retry_due_backorder(backorder_id: uuid.UUID) -> str:
    """The retry job's unit: one attempt if the backorder is still waiting and due; its status after."""
    async with leases.hold(lease_name(backorder_id), LEASE_TTL) as held:
        if not held:
            return "busy"
        backorder = await _attempt(backorder_id, manual=False)
        return backorder.status if backorder is not None else "gone"


async def due_backorders(limit: int) -> list[uuid.UUID]:
    """Waiting backorders of the bound tenant whose `retryAfter` has passed, oldest first."""
    now = db.utcnow()
    async with db.transaction() as session:
        return await BackorderRepository(session).due_ids(now, limit)


async def _record_failure(backorder_id: uuid.UUID, reason: str, suggestions: dict[str, Any] | None = None) -> Backorder:
    interval = dt.timedelta(milliseconds=get_settings().backorder_retry_interval_ms)
    async with db.transaction() as session:
        backorder = await BackorderRepository(session).get(backorder_id, for_update=True)
        assert backorder is not None
        backorder.attempts += 1
        backorder.status = BackorderStatus.RETRYING
        backorder.failure_reason = _reason(reason)
        backorder.provider_errors = {"reason": _reason(reason)}
        if suggestions:
            backorder.preferred_alternatives = {**(backorder.preferred_alternatives or {}), **suggestions}
        backorder.retry_after = db.utcnow() + min(interval * 2 ** (backorder.attempts - 1), MAX_BACKOFF)
        backorder.touch()
    return backorder


async def _attempt(backorder_id: uuid.UUID, *, manual: bool) -> Backorder | None:
    """One try, under the backorder's lease. Manual attempts raise the provider's error after recording
    it; the job records it and returns."""
    async with db.transaction() as session:
        backorder = await BackorderRepository(session).get(backorder_id, for_update=True)
        if backorder is None:
            return None
        if backorder.status == BackorderStatus.FULFILLED:
            return backorder  # fulfilled by the attempt we may have waited for
        if backorder.status not in BackorderStatus.WAITING:
            if manual:
                raise errors.BackorderClosed(backorder.status)
            return backorder
        if not manual and backorder.retry_after is not None and backorder.retry_after > db.utcnow():
            return backorder  # a late duplicate of a job that already ran
        subscription = await SubscriptionRepository(session).get(backorder.subscription_id)
        assert subscription is not None
        if subscription.status != SubscriptionStatus.PENDING_BACKORDER:
            if subscription.status == SubscriptionStatus.CANCELED:  # ended elsewhere: stop waiting for it
                backorder.status = BackorderStatus.CANCELLED
                backorder.retry_after = None
                backorder.touch()
            return backorder
        held = await suspension.suspension_of(session, subscription.user_id)
        if held is not None:  # suspended for an unpaid invoice: no new server until it is paid (`lift` wakes it)
            if manual:
                raise errors.AccountSuspended(held.invoice_number)
            backorder.retry_after = db.utcnow() + dt.timedelta(milliseconds=get_settings().backorder_retry_interval_ms)
            backorder.touch()
            return backorder
        requested = secrets.decrypt_json(backorder.requested_config_snapshot) or {}
        plan_id, number = backorder.plan_id, subscription.number

    try:
        ctx = await provisioning.prepare(plan_id, requested)
        capacity = await provisioning.check_capacity_or_reason(ctx)
        if not capacity.is_available:
            log.info("subscriptions.backorder_unavailable", backorder_id=str(backorder_id), reason=capacity.reason)
            return await _record_failure(backorder_id, capacity.reason or "", capacity.alternatives)
        price = await provisioning.period_price(ctx)
        async with db.transaction() as session:
            items = await SubscriptionItemRepository(session).of_subscription(subscription.id, for_update=True)
            if ctx.provider is None:  # the service type no longer provisions servers (D24): deliver as is
                for item in items:
                    item.provisioning_status = ProvisioningStatus.ACTIVE
        if ctx.provider is not None and not await provisioning.resume(items[0].id):  # a crashed attempt's server
            await provisioning.provision(items[0].id, ctx, number)
    except DecabillError as exc:
        async with db.transaction() as session:
            for item in await SubscriptionItemRepository(session).of_subscription(subscription.id, for_update=True):
                if item.provisioning_status == ProvisioningStatus.FAILED:
                    _reset_item(item)
        backorder = await _record_failure(backorder_id, exc.message)
        if manual:
            raise
        return backorder

    async with db.transaction() as session:
        subscription = await SubscriptionRepository(session).get(subscription.id, for_update=True)
        assert subscription is not None
        start_first_period(subscription, ctx, price, db.utcnow())
        await suspension.join_suspension(session, subscription, db.utcnow())  # suspended while provisioning
        backorder = await BackorderRepository(session).get(backorder_id, for_update=True)
        assert backorder is not None
        backorder.status = BackorderStatus.FULFILLED
        backorder.failure_reason = None
        backorder.retry_after = None
        backorder.touch()
        await webhooks.record(session, current_tenant(), "backorder.fulfilled", view(backorder))
    log.info("subscriptions.backorder_fulfilled", backorder_id=str(backorder_id), subscription=number)
    return backorder


# --- cancel -----------------------------------------------------------------------------------------------


async def _cancel_under_lease(backorder_id: uuid.UUID) -> tuple[Backorder, Subscription]:
    async with db.transaction() as session:
        backorder = await BackorderRepository(session).get(backorder_id, for_update=True)
        assert backorder is not None
        subscription = await SubscriptionRepository(session).get(backorder.subscription_id, for_update=True)
        assert subscription is not None
        if backorder.status == BackorderStatus.FULFILLED:
            raise BadRequest("Backorder is fulfilled; cancel its subscription instead")
        if backorder.status != BackorderStatus.CANCELLED:
            backorder.status = BackorderStatus.CANCELLED
            backorder.retry_after = None
            backorder.touch()
        if subscription.status == SubscriptionStatus.PENDING_BACKORDER:
            await end_now(session, subscription)
    return backorder, subscription


async def cancel_backorder(principal: Principal, backorder_id: uuid.UUID) -> BackorderView:
    """Give up waiting: the backorder becomes `cancelled` and its subscription `canceled` (never billed).
    Cancelling a cancelled backorder again changes nothing."""
    await _accessible(principal, backorder_id)
    async with leases.hold(lease_name(backorder_id), LEASE_TTL, wait=RETRY_WAIT_SECONDS) as held:
        if not held:
            raise errors.BackorderBusy(backorder_id)
        backorder, _subscription = await _cancel_under_lease(backorder_id)
    log.info("subscriptions.backorder_cancelled", backorder_id=str(backorder_id))
    return view(backorder)


async def cancel_waiting_subscription(subscription: Subscription) -> Subscription | None:
    """`cancelSubscription` of a `pending_backorder` subscription ends it at once with its backorder.
    None when the backorder was fulfilled meanwhile (the subscription is then cancelled normally)."""
    async with db.transaction() as session:
        backorder = await BackorderRepository(session).of_subscription(subscription.id)
    if backorder is None:
        async with db.transaction() as session:
            subscription = await SubscriptionRepository(session).get(subscription.id, for_update=True)
            assert subscription is not None
            if subscription.status != SubscriptionStatus.PENDING_BACKORDER:
                return None
            await end_now(session, subscription)
        return subscription
    async with leases.hold(lease_name(backorder.id), LEASE_TTL, wait=RETRY_WAIT_SECONDS) as held:
        if not held:
            raise errors.BackorderBusy(backorder.id)
        async with db.transaction() as session:
            current = await BackorderRepository(session).get(backorder.id)
            if current is not None and current.status == BackorderStatus.FULFILLED:
                return None
        _backorder, subscription = await _cancel_under_lease(backorder.id)
    return subscription
