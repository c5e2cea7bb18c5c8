"""Recovery of orders a crash interrupted (the job `subscriptions.recover_stale_orders`).

Ordering inserts the subscription — `active`, first period started, so it will be billed — with its item
`pending`, then creates the server (`service.create_subscription` → `provisioning.provision`). A process
that dies in between (crash, killed on deploy) leaves the item `pending` for good: the customer would be
billed for a server that may not exist, or a server exists at the provider that nobody recorded.

An item is *stale* when it is still `pending`, its subscription is billed (`active`/`pending_cancel`) and
nothing touched it for the grace period (ORDER_RECOVERY_GRACE_MS, 10 minutes). A live order touches the
item right before the provider call and finishes with that single call; the grace period is never shorter
than twice the longest that call can take (PROVIDER_TIMEOUT_SECONDS × (PROVIDER_MAX_RETRIES + 1)), so an
order still in progress is never taken for a crashed one. Waiting backorders (`pending_backorder`) are
not stale: their retries own them.

For each stale item the unit asks the item's provider for servers labelled `decabill-item=<item id>`
(`provisioning.ITEM_LABEL`, set on every server since the first release):

* found → the server is *adopted*: recorded on the item, which becomes `active`; then the steps the order
  did not reach run (public IPv4, A record, cached server info). Surplus servers with the same label are
  deleted (only one was ever wanted).
* none → the order ends as a provisioning failure does (`service.end_failed_order`): hostname released,
  item `failed`, subscription `canceled`, never billed — open positions recorded for it meanwhile and not
  invoiced yet are withdrawn; one already invoiced is logged (`subscriptions.recovery_invoiced_charge`)
  for an operator to credit. Whether the customer asked for `autoBackorder` is not stored, so no backorder.
* the provider is not registered any more, or cannot search by label (a plugin without `find_servers`) →
  nothing is decided (`skipped`, logged): ending could leak a server, adopting could bill a missing one.

Exactly once: the unit holds the lease `subscription:<id>` (the expiration job's, so the two never work on
one subscription at once) while it talks to the provider, then claims the item and its subscription
(`FOR UPDATE SKIP LOCKED`) and re-checks that they are still stale before it writes. A second delivery,
or a second worker, finds the lease held (`busy`) or the item no longer pending (`not_due`).
"""

from __future__ import annotations

import datetime as dt
import uuid

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.sql import Select

from decabill import db
from decabill.config import get_settings
from decabill.errors import DecabillError
from decabill.jobs import leases
from decabill.providers import ProvisioningProvider, ServerInfo, get_registry
from decabill.subscriptions import expiration, provisioning
from decabill.subscriptions.billing import BILLED_STATUSES
from decabill.subscriptions.service import end_failed_order
from decabill.tenancy import current_tenant
from models.subscriptions import OpenPosition, ProvisioningStatus, Subscription, SubscriptionItem

log = structlog.get_logger("decabill.subscriptions")

LEASE_TTL = expiration.LEASE_TTL


# --- settings -------------------------------------------------------------------------------------------


def batch_size() -> int:
    return get_settings().order_recovery_batch_size


def grace() -> dt.timedelta:
    """ORDER_RECOVERY_GRACE_MS, but at least twice the longest a provider call may take."""
    settings = get_settings()
    longest_call = settings.provider_timeout_seconds * (settings.provider_max_retries + 1)
    return max(dt.timedelta(milliseconds=settings.order_recovery_grace_ms), dt.timedelta(seconds=2 * longest_call))


# --- finding and claiming ------------------------------------------------------------------------------


def _stale(cutoff: dt.datetime) -> Select:
    return (db.scoped(SubscriptionItem)
            .join(Subscription, Subscription.id == SubscriptionItem.subscription_id)
            .where(SubscriptionItem.provisioning_status == ProvisioningStatus.PENDING,
                   SubscriptionItem.updated_at <= cutoff, Subscription.status.in_(BILLED_STATUSES)))


async def stale_orders(limit: int) -> list[uuid.UUID]:
    """Ids of the bound tenant's stale items, longest untouched first."""
    async with db.transaction() as session:
        query = _stale(db.utcnow() - grace()).order_by(SubscriptionItem.updated_at, SubscriptionItem.id).limit(limit)
        return [item.id for item in (await session.execute(query)).scalars()]


async def _find_stale(item_id: uuid.UUID, *, claim: bool = False) -> SubscriptionItem | None:
    """The item if it is (still) stale; `claim`: row-locked with its subscription, None when another
    transaction holds them."""
    query = _stale(db.utcnow() - grace()).where(SubscriptionItem.id == item_id)
    if claim:
        query = db.for_update(query, skip_locked=True)
    return (await db.current_session().execute(query)).scalar_one_or_none()


# --- the unit ------------------------------------------------------------------------------------------------


async def recover_order(item_id: uuid.UUID) -> str:
    """The recovery job's unit: `adopted`, `ended`, `skipped` (undecidable, see the module docstring),
    `busy` (someone else is on it) or `not_due` (not stale, or recovered already)."""
    async with db.transaction():
        item = await _find_stale(item_id)
    if item is None:
        return "not_due"
    async with leases.hold(expiration.lease_name(item.subscription_id), LEASE_TTL) as held:
        if not held:
            return "busy"
        async with db.transaction():
            item = await _find_stale(item_id)  # re-checked under the lease: an earlier delivery may be done
        if item is None:
            return "not_due"
        provider = get_registry().get(item.provider)
        servers = await provider.find_servers(provisioning.ITEM_LABEL, str(item_id)) if provider else None
        if provider is None or servers is None:
            log.warning("subscriptions.recovery_skipped", item_id=str(item_id), provider=item.provider,
                        reason="provider unknown" if provider is None else "provider cannot search servers")
            return "skipped"
        if servers:
            return await _adopt(item, provider, servers)
        return await _end(item)


async def _adopt(item: SubscriptionItem, provider: ProvisioningProvider, servers: list[ServerInfo]) -> str:
    server, *surplus = servers
    async with db.transaction():
        claimed = await _find_stale(item.id, claim=True)
        if claimed is None:
            return "busy"
        provisioning.record_server(claimed, server.server_id)
    log.info("subscriptions.order_recovered", outcome="adopted", item_id=str(item.id), provider=provider.id,
             hostname=item.hostname)
    for extra in surplus:  # a create request that was retried after a lost answer: only one was wanted
        try:
            await provider.delete_server(extra.server_id)
            log.warning("subscriptions.recovery_surplus_deleted", item_id=str(item.id), provider=provider.id)
        except DecabillError as exc:
            log.error("subscriptions.deprovision_failed", item_id=str(item.id), provider=provider.id,
                      error=exc.message)
    await provisioning.publish(provider, item.id, server.server_id, item.hostname, server.public_ip or None)
    return "adopted"


async def _end(item: SubscriptionItem) -> str:
    async with db.transaction() as session:
        claimed = await _find_stale(item.id, claim=True)
        if claimed is None:
            return "busy"
        await provisioning.mark_failed(session, claimed)
        await end_failed_order(claimed.subscription_id)
        withdrawn, invoiced = await _withdraw_charges(claimed.subscription_id)
    log.info("subscriptions.order_recovered", outcome="ended", item_id=str(item.id), provider=item.provider,
             withdrawn_charges=withdrawn)
    if invoiced:
        log.error("subscriptions.recovery_invoiced_charge", subscription_id=str(item.subscription_id),
                  invoiced_charges=invoiced)
    return "ended"


async def _withdraw_charges(subscription_id: uuid.UUID) -> tuple[int, int]:
    """Delete the subscription's open positions not invoiced yet (nothing was delivered); how many were
    deleted, and how many are on an invoice already (kept: an invoice is corrected by a credit note)."""
    session = db.current_session()
    own = (OpenPosition.tenant_id == current_tenant(), OpenPosition.subscription_id == subscription_id)
    withdrawn = await session.execute(delete(OpenPosition).where(*own, OpenPosition.invoice_id.is_(None)))
    invoiced = await session.execute(select(func.count()).select_from(OpenPosition).where(*own))
    return withdrawn.rowcount or 0, invoiced.scalar_one()
