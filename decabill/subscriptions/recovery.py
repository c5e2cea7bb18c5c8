"""Recovery of orders a crash interrupted (the job `subscriptions.recover_stale_orders`).

Ordering inserts the subscription — `active`, first period started, so it will be billed — with its item
`pending`, then creates the server (`service.create_subscription` → `provisioning.provision`). A process
that dies in between (crash, killed on deploy) leaves the item `pending` for good: the customer would be
billed for a server that may not exist, or a server exists at the provider that nobody recorded.

An item is *stale* when nothing touched it for the grace period (ORDER_RECOVERY_GRACE_MS, 10 minutes) and
it is in one of these states (waiting backorders, `pending_backorder`, are never stale: their retries own
them and resume a crashed attempt, `provisioning.resume`):

* `pending` in a billed subscription (`active`/`pending_cancel`): the process died during the create call;
* `failed` in a billed subscription: the create call failed and the process died before the order was
  ended (or turned into a backorder) — the customer got an error, yet the subscription would be billed;
* `failed` with its hostname still reserved in a `canceled` subscription: the failed create call got no
  answer, or the search for what it may have made failed (`provisioning._clear_failed_create`) — a server
  may exist that nobody will ever delete;
* `active` with its server recorded but no cached server info, in a billed subscription: the process
  died after the server was recorded and before the steps after it (public IPv4, A record, server info)
  finished;
* `active` with its server recorded and its A record still owed (`dns_pending_since`, set for the grace
  period at least), in a billed subscription: Cloudflare refused or failed the record during the order
  (or an earlier run of this job). A wound-down (`canceled`) subscription owes no record any more.

A live order touches the item right before the provider call and finishes with that single call; the
grace period is never shorter than twice the longest that call can take (PROVIDER_TIMEOUT_SECONDS ×
(PROVIDER_MAX_RETRIES + 1)), so an order still in progress is never taken for a crashed one.

What the unit does (it asks the item's provider for servers labelled `decabill-item=<item id>`,
`provisioning.ITEM_LABEL`, set on every server since the first release):

* `pending`, found → the server is *adopted* (`provisioning.adopt`): recorded on the item, which becomes
  `active`; then the steps the order did not reach run (public IPv4, A record, cached server info).
  Surplus servers with the same label are deleted (only one was ever wanted). → `adopted`
* `pending`, none → the order ends as a provisioning failure does (`service.end_failed_order`): hostname
  released, item `failed`, subscription `canceled`, never billed — open positions recorded for it
  meanwhile and not invoiced yet are withdrawn; one already invoiced is logged
  (`subscriptions.undelivered_invoiced_charge`) for an operator to credit. Whether the customer asked for
  `autoBackorder` is not stored, so no backorder. → `ended`
* `pending`, and the provider is not registered any more, or cannot search by label (a plugin without
  `find_servers`) → nothing is decided (`skipped`, logged): ending could leak a server, adopting could
  bill a missing one.
* `failed` → the order answered an error, so it stays failed: a server the provider made despite the
  error is deleted, not adopted (the customer was told there is none, and would be billed for it), and
  the order ends unbilled as above (`ended`). In a `canceled` subscription only the search is left: the
  labelled servers are deleted and the hostname released (`cleaned`). When the provider cannot be asked or
  a delete fails, the order still ends; the hostname stays reserved and the search is made again after
  another grace period (`deferred`, logged as `subscriptions.deprovision_failed`). An item whose hostname
  was released already (it failed before this search existed) has nothing to keep the search open with:
  its order ends only once the search worked.
* `active` without server info → the steps after the create call run again (`provisioning.publish`); the A
  record is created only where it is missing (`dns.create_a_record` takes Cloudflare's "identical record
  exists" as done). → `published`; when the server cannot be read, or Cloudflare fails the record again,
  the item is touched and tried again after another grace period (`deferred`). An owed A record is made the
  same way, and `dns_pending_since` cleared once it exists — or once DNS is not configured any more.

Exactly once: the unit holds the lease `subscription:<id>` (the expiration job's, so the two never work on
one subscription at once) while it talks to the provider, then claims the item and its subscription
(`FOR UPDATE SKIP LOCKED`) and re-checks that they are still stale, in the state it decided on, before it
writes. A second delivery, or a second worker, finds the lease held (`busy`) or the item no longer stale
(`not_due`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import NamedTuple

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.config import get_settings
from decabill.jobs import leases
from decabill.providers import get_registry
from decabill.subscriptions import dns, expiration, hostnames, provisioning
from decabill.subscriptions.billing import withdraw_undelivered
from decabill.subscriptions.lifecycle import end_failed_order
from decabill.subscriptions.repository import BILLED_STATUSES, SubscriptionItemRepository
from models.subscriptions import ProvisioningStatus, SubscriptionItem

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


class Stale(NamedTuple):
    item: SubscriptionItem
    subscription_status: str

    @property
    def billed(self) -> bool:
        return self.subscription_status in BILLED_STATUSES

    @property
    def state(self) -> tuple[str, bool]:
        """What the unit decides on; a claim must find the same."""
        return self.item.provisioning_status, self.billed


async def stale_orders(limit: int) -> list[uuid.UUID]:
    """Ids of the bound tenant's stale items, longest untouched first."""
    async with db.transaction() as session:
        return await SubscriptionItemRepository(session).stale_ids(db.utcnow() - grace(), limit)


async def _find_stale(item_id: uuid.UUID) -> Stale | None:
    async with db.transaction() as session:
        row = await SubscriptionItemRepository(session).get_stale(item_id, db.utcnow() - grace())
    return Stale(*row) if row is not None else None


async def _claim(session: AsyncSession, found: Stale) -> SubscriptionItem | None:
    """The item, row-locked with its subscription, if it is still stale in the state the unit decided on;
    None when it is not, or another transaction holds it."""
    row = await SubscriptionItemRepository(session).get_stale(found.item.id, db.utcnow() - grace(), claim=True)
    return row[0] if row is not None and Stale(*row).state == found.state else None


# --- the unit ------------------------------------------------------------------------------------------------


async def recover_order(item_id: uuid.UUID) -> str:
    """The recovery job's unit: `adopted`, `ended`, `cleaned`, `published`, `deferred` (tried, to be tried
    again), `skipped` (undecidable), `busy` (someone else is on it) or `not_due` (not stale, or recovered
    already); see the module docstring."""
    found = await _find_stale(item_id)
    if found is None:
        return "not_due"
    async with leases.hold(expiration.lease_name(found.item.subscription_id), LEASE_TTL) as held:
        if not held:
            return "busy"
        found = await _find_stale(item_id)  # re-checked under the lease: an earlier delivery may be done
        if found is None:
            return "not_due"
        if found.item.provisioning_status == ProvisioningStatus.ACTIVE:
            return await _publish(found)
        if found.item.provisioning_status == ProvisioningStatus.FAILED:
            return await _clear_failed(found)
        return await _settle_pending(found)


async def _settle_pending(found: Stale) -> str:
    item = found.item
    provider = get_registry().get(item.provider)
    servers = await provider.find_servers(provisioning.ITEM_LABEL, str(item.id)) if provider else None
    if provider is None or servers is None:
        log.warning("subscriptions.recovery_skipped", item_id=str(item.id), provider=item.provider,
                    reason="provider unknown" if provider is None else "provider cannot search servers")
        return "skipped"
    if not servers:
        return await _end(found, release_hostname=True)
    if not await provisioning.adopt(provider, item.id, item.hostname, servers, lambda session: _claim(session, found)):
        return "busy"
    log.info("subscriptions.order_recovered", outcome="adopted", item_id=str(item.id), provider=provider.id,
             hostname=item.hostname)
    return "adopted"


async def _clear_failed(found: Stale) -> str:
    """The create call failed: whatever carries the item's label is a stray, deleted (`wind_down`)."""
    item = found.item
    result = await provisioning.wind_down(item.id, item.provider, None, item.hostname)
    done = result.dns_done and result.server_done
    if found.billed and (done or item.hostname):  # a search left open is retried for the hostname it keeps
        return await _end(found, release_hostname=done)
    async with db.transaction() as session:
        claimed = await _claim(session, found)
        if claimed is None:
            return "busy"
        if done:
            await hostnames.release(session, claimed)
        claimed.touch()  # not done: searched again after another grace period
    outcome = "cleaned" if done else "deferred"
    log.info("subscriptions.order_recovered", outcome=outcome, item_id=str(item.id), provider=item.provider)
    return outcome


async def _end(found: Stale, *, release_hostname: bool) -> str:
    item = found.item
    async with db.transaction() as session:
        claimed = await _claim(session, found)
        if claimed is None:
            return "busy"
        await provisioning.mark_failed(session, claimed, release_hostname=release_hostname)
        await end_failed_order(session, claimed.subscription_id)
        withdrawn = await withdraw_undelivered(session, claimed.subscription_id)
    log.info("subscriptions.order_recovered", outcome="ended", item_id=str(item.id), provider=item.provider,
             withdrawn_charges=withdrawn, stray_search_open=not release_hostname)
    return "ended"


async def _publish(found: Stale) -> str:
    """The server is recorded, the steps after it were interrupted, or its A record is owed: run them again
    (idempotent: an A record that exists counts as made)."""
    item = found.item
    if item.server_info_snapshot and not dns.is_configured():  # only the A record was owed: nobody makes it now
        async with db.transaction() as session:
            claimed = await _claim(session, found)
            if claimed is None:
                return "busy"
            claimed.dns_pending_since = None
        log.info("subscriptions.order_recovered", outcome="published", item_id=str(item.id), provider=item.provider,
                 hostname=item.hostname, dns="not configured")
        return "published"
    provider = get_registry().get(item.provider)
    if provider is None:
        log.warning("subscriptions.recovery_skipped", item_id=str(item.id), provider=item.provider,
                    reason="provider unknown")
        return "skipped"
    cached_ip = (item.server_info_snapshot or {}).get("publicIp") or None
    await provisioning.publish(provider, item.id, item.provider_reference or "", item.hostname, cached_ip)
    async with db.transaction() as session:
        unread = await _claim(session, found)  # still no server info (the server could not be read) or A record
        if unread is not None:
            unread.touch()  # tried again after another grace period
    outcome = "deferred" if unread is not None else "published"
    log.info("subscriptions.order_recovered", outcome=outcome, item_id=str(item.id), provider=provider.id,
             hostname=item.hostname)
    return outcome
