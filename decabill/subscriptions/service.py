"""Subscriptions: ordering, reading, cancelling and resuming, items and their servers
(behavior.md part A §6.2–6.8; decisions D4, D5, D24).

Rules every operation here shares
* The caller must be a user (the static API key gets 400 `User not authenticated`).
* A user sees only their own subscriptions — admins included; another user's or another tenant's id
  is 404 exactly like an unknown one.
* The one exception is read-only and admin-only: `list_user_subscriptions` lists any user's subscriptions
  of the tenant (the API key may call it too).

Ordering (`create_subscription`)
1. complete customer profile (400 otherwise, before the plan is even looked up);
2. plan and service type of the tenant (404), effective configuration checked (400, every problem);
3. a service type without a registered provider (D24) is delivered at once: `active`, one item
   without a server;
4. otherwise the provider is asked for capacity. None (or the provider cannot be asked) → 400, unless
   `autoBackorder`: then 201 with the subscription `pending_backorder` and one backorder (D4);
5. with capacity: the subscription is created `active` with its first period and price, the server is
   provisioned; if that fails with `autoBackorder` the order still becomes a backorder, without it the
   subscription is ended at once (`canceled`, never billed) and the provider's 400 is returned.

A create call that failed may have made the server anyway: `provisioning.provision` deletes the servers
labelled with the item's id before the order ends or becomes a backorder. A process that dies during step
5 (crash, deploy) leaves the item `pending` — or `failed` in a subscription still `active` — and the
recovery job (`decabill.subscriptions.recovery`) finishes such orders once they are older than a grace
period.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import changes, db
from decabill.catalog.service import find_service_plan
from decabill.config import get_settings
from decabill.customers.service import require_complete_profile
from decabill.errors import DecabillError
from decabill.identity.principal import Principal, require_admin
from decabill.providers import get_registry
from decabill.shapes import Json, json_fields
from decabill.subscriptions import backorders, errors, expiration, hostnames, provisioning, suspension
from decabill.subscriptions.lifecycle import announce_created, end_failed_order, new_subscription, start_first_period
from decabill.subscriptions.provisioning import info_snapshot
from decabill.subscriptions.repository import SubscriptionItemRepository, SubscriptionRepository
from decabill.subscriptions.schedule import cancellation_effective_at
from decabill.tenancy import current_tenant
from decabill.webhooks import service as webhooks

# Re-exported (`name as name`): the backorder operations (for the handlers), and the prorated amount of a period
# and its open position (for invoicing's immediate charge, `createInvoice`).
from decabill.subscriptions.backorders import cancel_backorder as cancel_backorder
from decabill.subscriptions.backorders import list_backorders as list_backorders
from decabill.subscriptions.backorders import retry_backorder as retry_backorder
from decabill.subscriptions.billing import record_position as record_position
from decabill.subscriptions.schedule import amount_for as amount_for

from decabill.subscriptions import dns as dns  # the DNS provider client, for `decabill doctor`

# Suspension for non-payment: the mechanics, for dunning (which decides when).
from decabill.subscriptions.suspension import ServerRun as ServerRun
from decabill.subscriptions.suspension import lift as lift
from decabill.subscriptions.suspension import rename_cause as rename_cause
from decabill.subscriptions.suspension import start_owed_servers as start_owed_servers
from decabill.subscriptions.suspension import stop_owed_servers as stop_owed_servers
from decabill.subscriptions.suspension import suspend as suspend
from decabill.subscriptions.suspension import suspended_users as suspended_users
from decabill.subscriptions.suspension import suspension_of as suspension_of
from decabill.subscriptions.suspension import suspensions_of as suspensions_of
from decabill.subscriptions.suspension import users_with_servers_to_start as users_with_servers_to_start
from models.subscriptions import (
    ProvisioningStatus,
    Subscription,
    SubscriptionItem,
    SubscriptionStatus,
)

log = structlog.get_logger("decabill.subscriptions")


# --- lookups --------------------------------------------------------------------------------------------


async def find_own_subscription(user_id: uuid.UUID, subscription_id: uuid.UUID, *, lock: bool = False) -> Subscription:
    """The user's subscription (joins the caller's transaction); anyone else's is not found."""
    async with db.transaction() as session:
        found = await SubscriptionRepository(session).get_own(user_id, subscription_id, for_update=lock)
    if found is None:
        raise errors.SubscriptionNotFound(subscription_id)
    return found


async def find_subscription(subscription_id: uuid.UUID, *, lock: bool = False) -> Subscription:
    """Any subscription of the tenant, for admins (joins the caller's transaction)."""
    async with db.transaction() as session:
        found = await SubscriptionRepository(session).get(subscription_id, for_update=lock)
    if found is None:
        raise errors.SubscriptionNotFound(subscription_id)
    return found


async def subscription_number(subscription_id: uuid.UUID) -> str | None:
    async with db.transaction() as session:
        return await SubscriptionRepository(session).number_of(subscription_id)


# --- creating -------------------------------------------------------------------------------------------


async def create_subscription(principal: Principal, plan_id: uuid.UUID, requested_config: dict[str, Any] | None = None,
                              preferred_alternatives: dict[str, Any] | None = None,
                              auto_backorder: bool = False) -> Subscription:
    user_id = principal.require_user_id()
    # _PROFILE_RECHECK: checked first to fail fast, and again, locked, in the transaction that inserts the
    # subscription; an admin deleting the profile meanwhile either waits and then finds the subscription
    # (409), or deletes first and the order answers 400. No subscription is ever left without a profile.
    async with db.transaction():
        await require_complete_profile(user_id)
    await suspension.require_not_suspended(user_id)  # unpaid invoices past the suspend step: no new orders
    ctx = await provisioning.prepare(plan_id, requested_config)

    if ctx.provider is None:  # D24: nothing to provision
        price = await provisioning.period_price(ctx)
        async with db.transaction() as session:
            await require_complete_profile(user_id, lock=True)  # still there: see _PROFILE_RECHECK
            subscription, item = await new_subscription(session, user_id, ctx, status=SubscriptionStatus.ACTIVE)
            start_first_period(subscription, ctx, price, db.utcnow())
            item.provisioning_status = ProvisioningStatus.ACTIVE
            await announce_created(session, subscription)
        return subscription

    capacity = await (provisioning.check_capacity_or_reason(ctx) if auto_backorder else provisioning.check_capacity(ctx))
    if not capacity.is_available:
        if not auto_backorder:
            raise errors.NotAvailable(capacity.reason)
        return await backorders.order_as_backorder(user_id, ctx, capacity, preferred_alternatives)

    price = await provisioning.period_price(ctx)
    async with db.transaction() as session:
        await require_complete_profile(user_id, lock=True)  # still there: see _PROFILE_RECHECK
        subscription, item = await new_subscription(session, user_id, ctx, status=SubscriptionStatus.ACTIVE)
        start_first_period(subscription, ctx, price, db.utcnow())
        await announce_created(session, subscription)
    try:
        await provisioning.provision(item.id, ctx, subscription.number)
    except DecabillError as exc:
        if auto_backorder:
            return await backorders.backorder_after_failure(subscription.id, ctx, exc.message, preferred_alternatives)
        async with db.transaction() as session:
            await end_failed_order(session, subscription.id)
        raise
    async with db.transaction():
        return await find_own_subscription(user_id, subscription.id)


# --- reading --------------------------------------------------------------------------------------------


async def _page_of_subscriptions(user_id: uuid.UUID, limit: int, offset: int) -> list[Subscription] | Json:
    """One page of a user's subscriptions in the request's tenant, every status, newest first: on PostgreSQL the
    JSON the database wrote, else read-only records."""
    async with db.read() as session:
        subscriptions = SubscriptionRepository(session)
        if subscriptions.writes_json:
            return Json(await subscriptions.of_user_json(user_id, limit, offset, json_fields("SubscriptionResponse")))
        return await subscriptions.of_user(user_id, limit, offset)


async def list_subscriptions(principal: Principal, limit: int = 10, offset: int = 0) -> list[Subscription] | Json:
    return await _page_of_subscriptions(principal.require_user_id(), limit, offset)


async def list_user_subscriptions(principal: Principal, user_id: uuid.UUID, limit: int = 100,
                                  offset: int = 0) -> list[Subscription] | Json:
    """Admin: the subscriptions of any user of the tenant (the console's manual-invoice subscription picker).
    The user is not looked up: an unknown id, or a user of another tenant, simply has none here (as in the
    reference), which also holds in the modes whose users live outside Decabill (Keycloak, API key)."""
    require_admin(principal)
    return await _page_of_subscriptions(user_id, limit, offset)


async def get_subscription(principal: Principal, subscription_id: uuid.UUID) -> Subscription:
    user_id = principal.require_user_id()
    async with db.transaction():
        return await find_own_subscription(user_id, subscription_id)


async def list_items(principal: Principal, subscription_id: uuid.UUID) -> list[SubscriptionItem]:
    user_id = principal.require_user_id()
    async with db.transaction() as session:
        await find_own_subscription(user_id, subscription_id)
        return await SubscriptionItemRepository(session).of_subscription(subscription_id)


@dataclass(frozen=True)
class WatchedServer:
    """An item a dashboard shows, with what reading its server needs (no further query)."""

    subscription_id: uuid.UUID
    item_id: uuid.UUID
    service: str
    provider: str | None
    provider_reference: str | None
    hostname: str | None
    snapshot: dict[str, Any] | None
    suspended_at: dt.datetime | None = None  # suspended for an unpaid invoice (dunning): its server is stopped


async def watched_servers(user_ids: list[uuid.UUID], limit: int) -> dict[uuid.UUID, list[WatchedServer]]:
    """`active_servers` of many users in one query: per user, the first active item of each of its newest
    `limit` active subscriptions (a user without any maps to [])."""
    async with db.transaction() as session:
        rows = await SubscriptionRepository(session).active_servers_of_users(user_ids)
    out: dict[uuid.UUID, list[WatchedServer]] = {user_id: [] for user_id in user_ids}
    seen: dict[uuid.UUID, set[uuid.UUID]] = {user_id: set() for user_id in user_ids}
    for user_id, subscription_id, suspended_at, item in rows:
        subscriptions = seen[user_id]
        if subscription_id in subscriptions or len(subscriptions) >= limit:
            continue  # a later item of a subscription already shown, or beyond the user's limit
        subscriptions.add(subscription_id)
        if item is not None:
            out[user_id].append(WatchedServer(subscription_id, item.id, item.service, item.provider,
                                              item.provider_reference, item.hostname, item.server_info_snapshot,
                                              suspended_at))
    return out


async def owner_of(subscription_id: uuid.UUID) -> uuid.UUID | None:
    async with db.transaction() as session:
        subscription = await SubscriptionRepository(session).get(subscription_id)
    return None if subscription is None else subscription.user_id


async def read_watched_server(server: WatchedServer) -> tuple[ServerInfoView, dict[str, Any] | None]:
    """`get_server_info` for a server whose ownership the caller established (`watched_servers`): the provider
    read, and the snapshot to store when the reading differs from the stored one (`store_watched_snapshot`,
    left to the caller so that it can bound its database work)."""
    if not server.provider_reference:
        raise errors.NotProvisioned()
    provider = get_registry().get(server.provider)
    if provider is None:
        raise errors.NoServerInfo()
    info = await provider.server_info(server.provider_reference)
    snapshot = info_snapshot(info)
    return _server_info_view(info, provider.id, server.hostname), (None if snapshot == server.snapshot else snapshot)


async def store_watched_snapshot(item_id: uuid.UUID, snapshot: dict[str, Any]) -> None:
    async with db.transaction() as session:
        await SubscriptionItemRepository(session).store_snapshot(item_id, snapshot)


def _server_info_view(info: Any, provider_id: str, hostname: str | None) -> ServerInfoView:
    return ServerInfoView(
        name=info.name, public_ip=info.public_ip or "", private_ip=info.private_ip, status=info.status,
        metadata={**info.metadata, "provider": provider_id}, hostname=hostname,
        hostname_fqdn=hostnames.fqdn(hostname, get_settings().dns_base_domain) if hostname else None,
    )


# --- cancel / resume (D5) -------------------------------------------------------------------------------


async def cancel_subscription(principal: Principal, subscription_id: uuid.UUID) -> Subscription:
    user_id = principal.require_user_id()
    async with db.transaction():
        subscription = await find_own_subscription(user_id, subscription_id)
    if subscription.status == SubscriptionStatus.PENDING_BACKORDER:
        ended = await backorders.cancel_waiting_subscription(subscription)
        if ended is not None:
            return ended
    async with db.transaction() as session:
        subscription = await find_own_subscription(user_id, subscription_id, lock=True)
        if subscription.status == SubscriptionStatus.CANCELED:
            raise errors.AlreadyCanceled()
        if subscription.status == SubscriptionStatus.PENDING_CANCEL:
            raise errors.AlreadyPendingCancel(subscription.cancel_effective_at)
        if subscription.status == SubscriptionStatus.PENDING_BACKORDER:  # became one since the first read
            raise errors.AlreadyPendingCancel(None)
        plan = await find_service_plan(subscription.plan_id)
        now = db.utcnow()
        commitment_end = (subscription.activated_at or subscription.created_at) + dt.timedelta(days=plan.min_commitment_days)
        if now < commitment_end:
            raise errors.MinimumCommitment(commitment_end)
        subscription.status = SubscriptionStatus.PENDING_CANCEL
        changes.server_changed(user_id, subscription.id, None, "canceled")
        subscription.cancel_requested_at = now
        subscription.cancel_effective_at = cancellation_effective_at(
            plan, subscription.current_period_end, now, at_period_end=plan.cancel_at_period_end,
            notice_days=plan.notice_days)
        subscription.touch()
        await webhooks.record(session, current_tenant(), "subscription.canceled", subscription)
    return subscription


async def resume_subscription(principal: Principal, subscription_id: uuid.UUID) -> Subscription:
    user_id = principal.require_user_id()
    async with db.transaction():
        subscription = await find_own_subscription(user_id, subscription_id, lock=True)
        if subscription.status != SubscriptionStatus.PENDING_CANCEL:
            raise errors.NotPendingCancel()
        now = db.utcnow()
        if subscription.cancel_effective_at is not None and subscription.cancel_effective_at <= now:
            raise errors.CancellationAlreadyEffective()  # the expiration job is ending it right now
        subscription.status = SubscriptionStatus.ACTIVE
        changes.server_changed(user_id, subscription.id, None, "resumed")
        subscription.resumed_at = now
        subscription.cancel_requested_at = subscription.cancel_effective_at = None
        subscription.touch()
    return subscription


# --- server info and power (behavior.md §6.8) --------------------------------------------------------------


@dataclass(frozen=True)
class ServerInfoView:
    """Serialised through the spec's `ServerInfoResponse`: never the provider's server id."""

    name: str
    public_ip: str
    private_ip: str | None
    status: str
    metadata: dict[str, Any]
    hostname: str | None
    hostname_fqdn: str | None


POWER_CHANGES = {"start": "started", "stop": "stopped", "restart": "restarted"}


@dataclass(frozen=True)
class ActionResult:
    success: bool = True


async def _controllable_item(principal: Principal, subscription_id: uuid.UUID,
                             item_id: uuid.UUID) -> SubscriptionItem:
    user_id = principal.require_user_id()
    async with db.transaction() as session:
        subscription = await find_own_subscription(user_id, subscription_id)
        item = await SubscriptionItemRepository(session).of_subscription_by_id(subscription.id, item_id)
    if item is None:
        raise errors.SubscriptionItemNotFound(item_id)
    if subscription.status == SubscriptionStatus.CANCELED:
        raise errors.SubscriptionEnded()
    if not item.provider_reference:
        raise errors.NotProvisioned()
    if item.provisioning_status != ProvisioningStatus.ACTIVE:
        raise errors.NotActive(item.provisioning_status)
    return item


async def get_server_info(principal: Principal, subscription_id: uuid.UUID, item_id: uuid.UUID) -> ServerInfoView:
    item = await _controllable_item(principal, subscription_id, item_id)
    provider = get_registry().get(item.provider)
    if provider is None:
        raise errors.NoServerInfo()
    info = await provider.server_info(item.provider_reference or "")
    async with db.transaction() as session:
        stored = await SubscriptionItemRepository(session).get(item.id)
        assert stored is not None
        stored.server_info_snapshot = info_snapshot(info)
    return _server_info_view(info, provider.id, item.hostname)


async def _power(principal: Principal, subscription_id: uuid.UUID, item_id: uuid.UUID, action: str) -> ActionResult:
    item = await _controllable_item(principal, subscription_id, item_id)
    if action != "stop":  # a suspended customer's servers stay off until the unpaid invoice is settled
        await suspension.require_not_suspended(principal.require_user_id())
    provider = get_registry().get(item.provider)
    if provider is not None:  # a provider that is gone has nothing to switch (the reference: silent success)
        await getattr(provider, f"{action}_server")(item.provider_reference or "")
        log.info("subscriptions.power_action", action=action, item_id=str(item.id), provider=provider.id)
        changes.server_changed(principal.require_user_id(), subscription_id, item.id, POWER_CHANGES[action])
    return ActionResult()


async def start_server(principal: Principal, subscription_id: uuid.UUID, item_id: uuid.UUID) -> ActionResult:
    return await _power(principal, subscription_id, item_id, "start")


async def stop_server(principal: Principal, subscription_id: uuid.UUID, item_id: uuid.UUID) -> ActionResult:
    return await _power(principal, subscription_id, item_id, "stop")


async def restart_server(principal: Principal, subscription_id: uuid.UUID, item_id: uuid.UUID) -> ActionResult:
    return await _power(principal, subscription_id, item_id, "restart")



# --- termination for non-payment (dunning) -----------------------------------------------------------------


async def end_all_now(session: AsyncSession, user_id: uuid.UUID, now: dt.datetime) -> list[uuid.UUID]:
    """Cancel every running subscription of the user with immediate effect (in the caller's transaction):
    `pending_cancel` with `cancel_effective_at` = now, so the expiration job's wind-down (`wind_down_ended`)
    deletes the servers and records the final charge. The ids of the subscriptions ended."""
    subscriptions = await SubscriptionRepository(session).running_of_user(user_id, for_update=True)
    for subscription in subscriptions:
        subscription.status = SubscriptionStatus.PENDING_CANCEL
        subscription.cancel_requested_at = subscription.cancel_requested_at or now
        subscription.cancel_effective_at = now
        subscription.touch()
    return [s.id for s in subscriptions]


async def wind_down_ended(subscription_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Run the expiration unit for each subscription now (outside a transaction). One that is busy or fails
    stays due, and the expiration job finishes it."""
    results: dict[uuid.UUID, str] = {}
    for subscription_id in subscription_ids:
        try:
            results[subscription_id] = await expiration.expire_subscription(subscription_id)
        except Exception as exc:  # noqa: BLE001 - left to the expiration job, which retries
            log.error("subscriptions.wind_down_failed", subscription_id=str(subscription_id), error=str(exc))
            results[subscription_id] = "failed"
    return results
