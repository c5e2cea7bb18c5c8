"""Recurring open positions (D7) and the expiration job: amounts, idempotency, retries of failed cleanup
(behavior.md part A §6.6, part B §1, §2.4–2.5)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from decabill import db
from decabill.subscriptions import billing, expiration
from decabill.tenancy import bound_tenant
from models.subscriptions import Subscription, SubscriptionItem
from tests.jobs.conftest import load_row, now, positions_of, update_row
from tests.subscriptions.conftest import hetzner_plan, manual_plan, only_item, order

UTC = dt.timezone.utc


async def test_the_order_fixes_the_period_price_shown_by_the_price_preview(cloud, admin, customer):
    plan = await manual_plan(cloud, admin, basePrice="10.00", marginPercent="20", marginFixed="1.50")
    preview = (await cloud.post("/pricing/preview", token=customer, json={"planId": plan["id"]})).json()
    subscription = await order(cloud, customer, plan["id"])
    stored = await load_row(Subscription, subscription["id"])
    assert stored.period_price == Decimal(str(preview["totalPrice"])) == Decimal("13.5000")
    assert stored.currency == "EUR"


async def test_a_short_first_month_is_prorated_then_full_months_follow(cloud, admin, customer):
    plan = await manual_plan(cloud, admin, basePrice="31.00")
    subscription = await order(cloud, customer, plan["id"])
    sid = uuid.UUID(subscription["id"])
    await update_row(Subscription, sid, current_period_start=dt.datetime(2026, 1, 20, tzinfo=UTC),
                     current_period_end=dt.datetime(2026, 2, 1, tzinfo=UTC),
                     next_billing_at=dt.datetime(2026, 2, 1, tzinfo=UTC))
    with bound_tenant("default"):
        first = await billing.bill_due_period(sid)
        second = await billing.bill_due_period(sid)  # Feb 1 - Mar 1 is due too: the job catches up one period per run
        assert await billing.due_for_billing(100) == [sid]  # ... and March is still due
    assert (first.kind, first.amount, first.period_end) == ("recurring", Decimal("12.0000"),
                                                           dt.datetime(2026, 2, 1, tzinfo=UTC))
    assert (second.amount, second.period_start, second.period_end) == (
        Decimal("31.0000"), dt.datetime(2026, 2, 1, tzinfo=UTC), dt.datetime(2026, 3, 1, tzinfo=UTC))
    advanced = await load_row(Subscription, sid)
    assert advanced.current_period_start == dt.datetime(2026, 3, 1, tzinfo=UTC)
    assert advanced.next_billing_at == dt.datetime(2026, 4, 1, tzinfo=UTC)


async def test_billing_is_idempotent_and_backed_by_the_unique_period_key(cloud, admin, customer):
    plan = await manual_plan(cloud, admin, billingIntervalType="day", basePrice="5")
    subscription = await order(cloud, customer, plan["id"])
    sid = uuid.UUID(subscription["id"])
    start = now() - dt.timedelta(days=1, hours=1)
    await update_row(Subscription, sid, current_period_start=start, current_period_end=start + dt.timedelta(days=1),
                     next_billing_at=start + dt.timedelta(days=1))
    with bound_tenant("default"):
        assert await billing.bill_due_period(sid) is not None
        assert await billing.bill_due_period(sid) is None  # not due any more
        # Even with the schedule put back (a lost update, a restored backup), the period is billed once.
        await update_row(Subscription, sid, current_period_start=start, current_period_end=start + dt.timedelta(days=1),
                         next_billing_at=start + dt.timedelta(days=1))
        assert await billing.bill_due_period(sid) is None
    assert len(await positions_of(subscription["id"])) == 1
    assert (await load_row(Subscription, sid)).current_period_start == start + dt.timedelta(days=1)


async def test_immediate_cancellation_bills_the_partial_last_period(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin, billingIntervalType="day", basePrice="24.00", cancelAtPeriodEnd=False)
    subscription = await order(cloud, customer, plan["id"])
    sid = uuid.UUID(subscription["id"])
    start = now() - dt.timedelta(hours=6)
    await update_row(Subscription, sid, current_period_start=start, current_period_end=start + dt.timedelta(days=1),
                     next_billing_at=start + dt.timedelta(days=1))
    canceled = (await cloud.post(f"/subscriptions/{sid}/cancel", token=customer)).json()
    assert canceled["status"] == "pending_cancel"
    effective = dt.datetime.fromisoformat(canceled["cancelEffectiveAt"].replace("Z", "+00:00"))
    with bound_tenant("default"):
        assert await expiration.expire_subscription(sid) == "canceled"
    [final] = await positions_of(str(sid))
    assert final.kind == "final" and final.period_start == start and final.period_end == effective
    minutes = int(effective.timestamp() // 60) - int(start.timestamp() // 60)
    assert final.amount == (Decimal(24) * minutes / Decimal(24 * 60)).quantize(Decimal("0.0001"))
    assert fake_cloud.hetzner.servers == {}


async def test_cancel_at_period_end_bills_full_periods_and_no_empty_final_one(cloud, admin, customer):
    plan = await manual_plan(cloud, admin, billingIntervalType="day", basePrice="5", cancelAtPeriodEnd=True)
    subscription = await order(cloud, customer, plan["id"])
    sid = uuid.UUID(subscription["id"])
    await cloud.post(f"/subscriptions/{sid}/cancel", token=customer)
    end = (await load_row(Subscription, sid)).current_period_end
    past = now() - dt.timedelta(minutes=1)
    shift = end - past  # move the whole subscription into the past: the period and the cancellation are due
    sub = await load_row(Subscription, sid)
    await update_row(Subscription, sid, current_period_start=sub.current_period_start - shift,
                     current_period_end=past, next_billing_at=past, cancel_effective_at=past)
    with bound_tenant("default"):
        assert await billing.bill_due_period(sid) is not None  # the last full period, as a recurring position
        assert await expiration.expire_subscription(sid) == "canceled"
        assert await billing.bill_due_period(sid) is None  # canceled: nothing more
    positions = await positions_of(str(sid))
    assert [(p.kind, p.amount) for p in positions] == [("recurring", Decimal("5.0000"))]


async def test_a_pending_cancel_subscription_leaves_its_shortened_last_period_to_the_expiration_job(cloud, admin, customer):
    plan = await manual_plan(cloud, admin, billingIntervalType="day", basePrice="24", cancelAtPeriodEnd=False)
    subscription = await order(cloud, customer, plan["id"])
    sid = uuid.UUID(subscription["id"])
    start = now() - dt.timedelta(days=1, hours=1)
    await update_row(Subscription, sid, current_period_start=start, current_period_end=start + dt.timedelta(days=1),
                     next_billing_at=start + dt.timedelta(days=1), status="pending_cancel",
                     cancel_effective_at=start + dt.timedelta(hours=12))
    with bound_tenant("default"):
        assert await billing.bill_due_period(sid) is None
        assert await expiration.expire_subscription(sid) == "canceled"
    [final] = await positions_of(str(sid))
    assert final.kind == "final" and final.amount == Decimal("12.0000")


async def test_failed_deprovisioning_is_retried_until_the_server_is_gone(cloud, admin, customer, fake_cloud):
    plan = await hetzner_plan(cloud, admin, cancelAtPeriodEnd=False)
    subscription = await order(cloud, customer, plan["id"])
    sid = uuid.UUID(subscription["id"])
    await cloud.post(f"/subscriptions/{sid}/cancel", token=customer)
    await update_row(Subscription, sid, cancel_effective_at=now() - dt.timedelta(seconds=1))
    item = await only_item(cloud, customer, str(sid))

    fake_cloud.hetzner.fail_next("service_error", 503, "try again", method="DELETE")
    fake_cloud.cloudflare.fail_next(500, method="DELETE")
    with bound_tenant("default"):
        assert await expiration.expire_subscription(sid) == "canceled"  # the customer's side is done ...
    assert (await cloud.get(f"/subscriptions/{sid}", token=customer)).json()["status"] == "canceled"
    stored = await load_row(SubscriptionItem, item["id"])
    assert stored.provider_reference is not None and stored.hostname is not None  # ... the cleanup is not
    assert len(fake_cloud.hetzner.servers) == 1 and len(fake_cloud.cloudflare.records) == 1
    with bound_tenant("default"):
        assert await expiration.due_for_expiration(100) == [sid]
        assert await expiration.expire_subscription(sid) == "cleaned"
        assert await expiration.due_for_expiration(100) == []
    stored = await load_row(SubscriptionItem, item["id"])
    assert stored.provider_reference is None and stored.hostname is None
    assert fake_cloud.hetzner.servers == {} and fake_cloud.cloudflare.records == {}
    assert len([p for p in await positions_of(str(sid)) if p.kind == "final"]) <= 1


@pytest.mark.parametrize("without_items", [False, True], ids=["item-without-server", "no-items"])
async def test_a_product_without_servers_cancelled_at_once_gets_its_final_charge(cloud, admin, customer, without_items):
    """Used for minutes, then cancelled with immediate effect: delivered since activation (it has no server to
    wait for), so the last period is billed, prorated — with or without an item row."""
    plan = await manual_plan(cloud, admin, billingIntervalType="hour", basePrice="60.00", cancelAtPeriodEnd=False)
    subscription = await order(cloud, customer, plan["id"])
    sid = uuid.UUID(subscription["id"])
    start = now() - dt.timedelta(minutes=30)
    await update_row(Subscription, sid, current_period_start=start, current_period_end=start + dt.timedelta(hours=1),
                     next_billing_at=start + dt.timedelta(hours=1), activated_at=start)
    if without_items:
        async with db.transaction() as session:
            for item in (await session.execute(select(SubscriptionItem).where(SubscriptionItem.subscription_id == sid))).scalars():
                await session.delete(item)
    canceled = (await cloud.post(f"/subscriptions/{sid}/cancel", token=customer)).json()
    assert canceled["status"] == "pending_cancel"
    effective = dt.datetime.fromisoformat(canceled["cancelEffectiveAt"].replace("Z", "+00:00"))
    await update_row(Subscription, sid, cancel_effective_at=min(effective, now()))
    effective = (await load_row(Subscription, sid)).cancel_effective_at
    with bound_tenant("default"):
        assert await expiration.expire_subscription(sid) == "canceled"
    [final] = await positions_of(str(sid))
    assert final.kind == "final" and final.period_start == start and final.period_end == effective
    assert Decimal(29) <= final.amount <= Decimal(31)
    assert (await cloud.get(f"/subscriptions/{sid}", token=customer)).json()["status"] == "canceled"


async def test_a_delivered_subscription_keeps_its_charges_whoever_asks_to_withdraw_them(cloud, admin, customer):
    """The one delivered rule guards withdrawals too (recovery, expiration): a product without servers is
    delivered at once, so its recorded charges stay."""
    plan = await manual_plan(cloud, admin, billingIntervalType="day", basePrice="5")
    subscription = await order(cloud, customer, plan["id"])
    sid = uuid.UUID(subscription["id"])
    start = now() - dt.timedelta(days=1, hours=1)
    await update_row(Subscription, sid, current_period_start=start, current_period_end=start + dt.timedelta(days=1),
                     next_billing_at=start + dt.timedelta(days=1))
    with bound_tenant("default"):
        assert await billing.bill_due_period(sid) is not None
        async with db.transaction() as session:
            assert await billing.withdraw_undelivered(session, sid) == 0
    assert len(await positions_of(str(sid))) == 1
