"""Background jobs of subscriptions: thin taskiq wrappers around the unit functions of the service
modules (which the tests call directly). Coordinators fan out one unit per due entity and tenant.

| coordinator (interval setting)                                | unit                              |
|---------------------------------------------------------------|-----------------------------------|
| `subscriptions.retry_due_backorders` (BACKORDER_RETRY_INTERVAL_MS, batch BACKORDER_RETRY_BATCH_SIZE) | `subscriptions.retry_backorder` |
| `subscriptions.expire_due` (EXPIRATION_SCHEDULER_INTERVAL, batch EXPIRATION_SCHEDULER_BATCH_SIZE)   | `subscriptions.expire`          |
| `subscriptions.bill_due` (BILLING_SCHEDULER_INTERVAL, batch BILLING_SCHEDULER_BATCH_SIZE)           | `subscriptions.bill_period`     |
| `subscriptions.update_items` (SUBSCRIPTION_UPDATE_SCHEDULER_INTERVAL, all items)                    | `subscriptions.update_item`     |
| `subscriptions.recover_stale_orders` (ORDER_RECOVERY_INTERVAL_MS, batch ORDER_RECOVERY_BATCH_SIZE)   | `subscriptions.recover_order`   |
"""

from __future__ import annotations

import uuid

from decabill.config import get_settings
from decabill.jobs.queue import fan_out, periodic, run_unit, task
from decabill.subscriptions import backorders, billing, expiration, recovery, updates


@task("subscriptions.retry_backorder")
async def retry_backorder(tenant: str, backorder_id: str) -> str:
    return await run_unit("subscriptions.retry_backorder", tenant,
                          lambda: backorders.retry_due_backorder(uuid.UUID(backorder_id)))


@periodic("subscriptions.retry_due_backorders", interval=lambda s: s.backorder_retry_interval_ms)
async def retry_due_backorders() -> int:
    return await fan_out(backorders.due_backorders, retry_backorder, get_settings().backorder_retry_batch_size)


@task("subscriptions.expire")
async def expire(tenant: str, subscription_id: str) -> str:
    return await run_unit("subscriptions.expire", tenant,
                          lambda: expiration.expire_subscription(uuid.UUID(subscription_id)))


@periodic("subscriptions.expire_due", interval=lambda s: s.expiration_scheduler_interval)
async def expire_due() -> int:
    return await fan_out(expiration.due_for_expiration, expire, get_settings().expiration_scheduler_batch_size)


@task("subscriptions.bill_period")
async def bill_period(tenant: str, subscription_id: str) -> str | None:
    async def work() -> str | None:
        position = await billing.bill_due_period(uuid.UUID(subscription_id))
        return str(position.id) if position is not None else None

    return await run_unit("subscriptions.bill_period", tenant, work)


@periodic("subscriptions.bill_due", interval=lambda s: s.billing_scheduler_interval)
async def bill_due() -> int:
    return await fan_out(billing.due_for_billing, bill_period, get_settings().billing_scheduler_batch_size)


@task("subscriptions.update_item")
async def update_item(tenant: str, item_id: str) -> str:
    return await run_unit("subscriptions.update_item", tenant, lambda: updates.update_item(uuid.UUID(item_id)))


@periodic("subscriptions.update_items", interval=lambda s: s.subscription_update_scheduler_interval)
async def update_items() -> int:
    return await fan_out(updates.items_to_update, update_item, 0)


@task("subscriptions.recover_order")
async def recover_order(tenant: str, item_id: str) -> str:
    return await run_unit("subscriptions.recover_order", tenant, lambda: recovery.recover_order(uuid.UUID(item_id)))


@periodic("subscriptions.recover_stale_orders", interval=lambda settings: settings.order_recovery_interval_ms)
async def recover_stale_orders() -> int:
    return await fan_out(recovery.stale_orders, recover_order, recovery.batch_size())
