"""Ending subscriptions (behavior.md part A §6.6 expiration job, part B §1 final charge).

A `pending_cancel` subscription whose `cancel_effective_at` has passed is wound down: for each item its
A record is deleted and its hostname released, its server deleted at the provider; the last period —
from the current period's start to `cancel_effective_at` — is recorded as a `final` open position
(prorated), and the subscription becomes `canceled`.

Besides the recorded server, every server labelled with the item's id is deleted (`provisioning.wind_down`):
an order a crash interrupted may have left its item `pending` with a server nobody recorded. Such a
subscription — never delivered (`billing.was_delivered`: no item ever `active`; a subscription without
items is delivered once activated) — ends unbilled instead, as the recovery job would have ended it: no
final position, open positions not invoiced yet withdrawn, its pending items `failed`.

Cleanup is retried: when a DNS delete or a server delete (or the search by label) fails, the item keeps
its server id and its hostname, the failure is logged, and the subscription (already `canceled` — the
customer is not billed for the provider's trouble) stays on the job's list until everything is gone. A
`failed` item's hostname alone is not a leftover here: it marks a server search after a failed create
call that the recovery job makes once the grace period has passed (`decabill.subscriptions.recovery`).

An A record still owed for an item (`dns_pending_since`, Cloudflare failed it during the order) is owed no
more once the item is wound down: the flag is cleared, and the recovery job never looks at a `canceled`
subscription's active items for it.

A unit holds the lease `subscription:<id>` for the provider calls, then claims the row
(`FOR UPDATE SKIP LOCKED`) to write; the re-checked status and the unique period key of open
positions make a repeated run a no-op. Resuming is refused once `cancel_effective_at` has passed, so a
resume cannot race the wind-down.
"""

from __future__ import annotations

import datetime as dt
import uuid

import structlog
from decabill import changes, db
from decabill.catalog.service import find_service_plan
from decabill.jobs import leases
from decabill.subscriptions import hostnames, provisioning
from decabill.subscriptions.billing import billable_amount, record_position, was_delivered, withdraw_undelivered
from decabill.subscriptions.repository import SubscriptionItemRepository, SubscriptionRepository
from models.subscriptions import ProvisioningStatus, SubscriptionStatus

log = structlog.get_logger("decabill.subscriptions")

LEASE_TTL = dt.timedelta(minutes=10)


def lease_name(subscription_id: uuid.UUID) -> str:
    """The lease of work on a subscription's servers (expiration, and the recovery of an interrupted order)."""
    return f"subscription:{subscription_id}"


async def due_for_expiration(limit: int) -> list[uuid.UUID]:
    now = db.utcnow()
    async with db.transaction() as session:
        return await SubscriptionRepository(session).due_for_expiration(now, limit)


async def expire_subscription(subscription_id: uuid.UUID) -> str:
    """The expiration job's unit; returns what it did (`canceled`, `cleaned`, `busy`, `not_due`)."""
    async with leases.hold(lease_name(subscription_id), LEASE_TTL) as held:
        if not held:
            return "busy"
        now = db.utcnow()
        async with db.transaction() as session:
            subscription = await SubscriptionRepository(session).get_due_for_expiration(subscription_id, now)
            if subscription is None:
                return "not_due"
            items = await SubscriptionItemRepository(session).of_subscription(subscription_id)
            work = [(i.id, i.provider, i.provider_reference, i.hostname) for i in items]

        results = [await provisioning.wind_down(*entry) for entry in work]

        async with db.transaction() as session:
            subscription = await SubscriptionRepository(session).get_due_for_expiration(subscription_id, now, claim=True)
            if subscription is None:
                return "busy"
            items = await SubscriptionItemRepository(session).of_subscription(subscription_id, for_update=True)
            by_id = {item.id: item for item in items}
            for result in results:
                item = by_id.get(result.item_id)
                if item is None:
                    continue
                if result.dns_done and result.server_done and item.hostname:  # no server carries the name any more
                    await hostnames.release(session, item)
                if result.server_done and item.provider_reference:
                    item.provider_reference = None
                item.dns_pending_since = None  # a wound-down item owes no A record
                item.touch()
            if subscription.status == SubscriptionStatus.CANCELED:
                return "cleaned"
            if was_delivered(subscription, by_id.values()):
                plan = await find_service_plan(subscription.plan_id)
                effective = subscription.cancel_effective_at or now
                start = subscription.current_period_start
                if start is not None and effective > start:
                    amount = await billable_amount(session, plan, subscription, start, effective)
                    await record_position(session, subscription, "final", start, effective, amount)
            else:  # never delivered (an interrupted order the recovery job had not finished): never billed
                for item in by_id.values():
                    item.provisioning_status = ProvisioningStatus.FAILED
                withdrawn = await withdraw_undelivered(session, subscription.id)
                log.info("subscriptions.ended_undelivered", subscription=subscription.number,
                         withdrawn_charges=withdrawn)
            subscription.status = SubscriptionStatus.CANCELED
            changes.server_changed(subscription.user_id, subscription.id, None, "ended")
            subscription.ended_at = now
            subscription.next_billing_at = None
            subscription.touch()
    log.info("subscriptions.canceled", subscription=subscription.number)
    return "canceled"
