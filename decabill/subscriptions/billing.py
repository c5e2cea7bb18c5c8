"""Recurring charges: an open position per billing period (behavior.md part B §1–2.5, decision D7).

When a subscription's `next_billing_at` (= the end of its current period) has passed, the period that
just ended is recorded as an open position — its amount fixed now: the subscription's period price,
prorated when the period covered only part of a cycle — and the schedule moves on by one period
(from the old end, so periods stay contiguous; a late job catches up one period per run).

Claimed per subscription in one transaction: `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL (a
second worker skips the row), SQLite's BEGIN IMMEDIATE serialises; the re-checked `next_billing_at`
and the unique (subscription_id, period_start) key make a repeated run a no-op. The open positions are
invoiced by the invoicing area on the user's billing day.

`pending_cancel` subscriptions keep being billed for full periods before their end; the last period,
cut short at `cancel_effective_at`, is billed by the expiration job (`decabill.subscriptions.expiration`).

A subscription that ends without its server ever being delivered (an order a crash interrupted, ended by
the recovery job or by the expiration job) is never billed: `withdraw_undelivered` deletes the open
positions recorded for it meanwhile that are not invoiced yet. "Delivered" is decided in one place,
`was_delivered`, for every job that asks.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from decimal import Decimal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.catalog.service import find_service_plan
from decabill.subscriptions.repository import (
    OpenPositionRepository,
    SubscriptionItemRepository,
    SubscriptionRepository,
)
from decabill.subscriptions.schedule import amount_for, period_end
from decabill.subscriptions.suspension import unbillable_share
from models.subscriptions import OpenPosition, ProvisioningStatus, Subscription, SubscriptionItem, SubscriptionStatus

log = structlog.get_logger("decabill.subscriptions")


def was_delivered(subscription: Subscription, items: Iterable[SubscriptionItem]) -> bool:
    """Whether the customer got what the subscription sells, so its periods are billed: one of its items is
    `active` (a server was made, or a product without provisioning was handed over at order time); a
    subscription without items (a product without provisioning, D24) is delivered once it was activated."""
    items = list(items)
    if not items:
        return subscription.activated_at is not None
    return any(item.provisioning_status == ProvisioningStatus.ACTIVE for item in items)


async def record_position(session: AsyncSession, subscription: Subscription, kind: str, start: dt.datetime,
                          end: dt.datetime, amount: Decimal) -> OpenPosition | None:
    """Insert the position of [start, end) unless it is worth nothing or already recorded."""
    if amount <= 0 or end <= start:
        return None
    position = OpenPosition(subscription_id=subscription.id,
                            user_id=subscription.user_id, kind=kind, description=f"Subscription {subscription.number}",
                            period_start=start, period_end=end, amount=amount, currency=subscription.currency)
    if not await OpenPositionRepository(session).create_unless_taken(position):
        return None  # this period is billed already: the unique key is the last line of defence
    return position


async def billable_amount(session: AsyncSession, plan, subscription: Subscription, start: dt.datetime,
                          end: dt.datetime) -> Decimal:
    """What [start, end) costs, less the time the subscription was suspended under a dunning policy that does
    not bill suspended time (`SuspensionPeriod`s; none when suspended time is billed, the default)."""
    price = subscription.period_price or Decimal(0)
    return amount_for(plan, price, start, end, excluded=await unbillable_share(session, subscription.id, start, end))


async def due_for_billing(limit: int) -> list[uuid.UUID]:
    now = db.utcnow()
    async with db.transaction() as session:
        return await SubscriptionRepository(session).due_for_billing(now, limit)


async def bill_due_period(subscription_id: uuid.UUID) -> OpenPosition | None:
    """The billing job's unit: record the period that ended and advance the schedule by one period."""
    now = db.utcnow()
    async with db.transaction() as session:
        subscription = await SubscriptionRepository(session).claim_due_for_billing(subscription_id, now)
        if subscription is None or subscription.current_period_start is None or subscription.current_period_end is None:
            return None  # not due any more, or another worker has it right now
        start, end = subscription.current_period_start, subscription.current_period_end
        effective = subscription.cancel_effective_at
        if subscription.status == SubscriptionStatus.PENDING_CANCEL and effective is not None and effective < end:
            return None  # the last, shortened period is the expiration job's
        plan = await find_service_plan(subscription.plan_id)
        position = await record_position(session, subscription, "recurring", start, end,
                                          await billable_amount(session, plan, subscription, start, end))
        subscription.current_period_start = end
        subscription.current_period_end = subscription.next_billing_at = period_end(plan, end)
        subscription.touch()
    return position


async def withdraw_undelivered(session: AsyncSession, subscription_id: uuid.UUID) -> int:
    """The subscription ends without its server ever delivered: delete its open positions not invoiced yet;
    how many. One already on an invoice is kept (an invoice is corrected by a credit note) and logged
    (`subscriptions.undelivered_invoiced_charge`) for an operator to credit. A delivered subscription
    (`was_delivered`) keeps its charges whoever asks: nothing is withdrawn."""
    subscription = await SubscriptionRepository(session).get(subscription_id)
    items = await SubscriptionItemRepository(session).of_subscription(subscription_id)
    if subscription is not None and was_delivered(subscription, items):
        log.error("subscriptions.withdrawal_refused", subscription_id=str(subscription_id), reason="delivered")
        return 0
    positions = OpenPositionRepository(session)
    withdrawn = await positions.withdraw_unbilled(subscription_id)
    invoiced = await positions.count_of(subscription_id)
    if invoiced:
        log.error("subscriptions.undelivered_invoiced_charge", subscription_id=str(subscription_id),
                  invoiced_charges=invoiced)
    return withdrawn
