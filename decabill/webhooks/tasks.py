"""Background jobs of webhooks.

| coordinator (interval setting)                                       | unit                |
|----------------------------------------------------------------------|---------------------|
| `webhooks.deliver_due` (WEBHOOK_DELIVERY_INTERVAL_MS, batch WEBHOOK_DELIVERY_BATCH_SIZE) | `webhooks.deliver` |

`webhooks.deliver` is also sent right after the commit that recorded an event (and by a redelivery); the
coordinator finds what that missed (a crash between commit and send) and what is due for a retry.
"""

from __future__ import annotations

import uuid

from decabill.config import get_settings
from decabill.jobs.queue import fan_out, periodic, run_unit, task
from decabill.webhooks import delivery


@task("webhooks.deliver")
async def deliver(tenant: str, delivery_id: str) -> str:
    return await run_unit("webhooks.deliver", tenant, lambda: delivery.deliver(uuid.UUID(delivery_id)))


@periodic("webhooks.deliver_due", interval=lambda s: s.webhook_delivery_interval_ms)
async def deliver_due() -> int:
    return await fan_out(delivery.due_deliveries, deliver, get_settings().webhook_delivery_batch_size)
