"""The state changes of a subscription that ordering (`service`), backorders and the recovery job share:
inserting an order, starting its first period, ending it at once. Each works in the caller's session."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db, secrets
from decabill.config import get_settings
from decabill.numbering import format_number, next_number
from decabill.subscriptions.provisioning import OrderContext
from decabill.subscriptions.repository import SubscriptionItemRepository, SubscriptionRepository
from decabill.subscriptions.schedule import period_end
from decabill.tenancy import current_tenant
from decabill.webhooks import service as webhooks
from models.subscriptions import Subscription, SubscriptionItem, SubscriptionStatus

NUMBER_SEQUENCE = "subscription"


async def new_subscription(session: AsyncSession, user_id: uuid.UUID, ctx: OrderContext, *,
                           status: str) -> tuple[Subscription, SubscriptionItem]:
    """Insert a subscription (numbered) and its one pending item."""
    number = format_number("SUB", await next_number(session, NUMBER_SEQUENCE))
    subscription = await SubscriptionRepository(session).create(Subscription(
        number=number, plan_id=ctx.plan.id, user_id=user_id, status=status, currency=get_settings().billing_currency))
    item = SubscriptionItem(subscription_id=subscription.id, service_type_id=ctx.service_type.id,
                            provider=ctx.service_type.provider, service=ctx.config.service, region=ctx.config.region,
                            server_type=ctx.config.server_type)
    item.config_snapshot = secrets.encrypt_json(ctx.config.values)
    await SubscriptionItemRepository(session).create(item)
    return subscription, item


async def announce_created(session: AsyncSession, subscription: Subscription) -> None:
    """`subscription.created`, in the transaction that inserted the order (once its first state is set)."""
    await webhooks.record(session, current_tenant(), "subscription.created", subscription)


def start_first_period(subscription: Subscription, ctx: OrderContext, price: Decimal, now: dt.datetime) -> None:
    subscription.status = SubscriptionStatus.ACTIVE
    subscription.activated_at = now
    subscription.current_period_start = now
    subscription.current_period_end = subscription.next_billing_at = period_end(ctx.plan, now)
    subscription.period_price = price
    subscription.touch()


async def end_now(session: AsyncSession, subscription: Subscription) -> None:
    """Canceled as of now, never billed again (`subscription.canceled`)."""
    now = db.utcnow()
    subscription.status = SubscriptionStatus.CANCELED
    subscription.cancel_requested_at = subscription.cancel_effective_at = subscription.ended_at = now
    subscription.next_billing_at = None
    subscription.touch()
    await webhooks.record(session, current_tenant(), "subscription.canceled", subscription)


async def end_failed_order(session: AsyncSession, subscription_id: uuid.UUID) -> None:
    """The server could not be created and no backorder was wanted: the subscription ends at once and
    is never billed (the reference left it `active` with a failed item). Also the end of an order that a
    crash interrupted before its server existed (`decabill.subscriptions.recovery`)."""
    subscription = await SubscriptionRepository(session).get(subscription_id, for_update=True)
    assert subscription is not None
    await end_now(session, subscription)
