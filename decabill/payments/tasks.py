"""Background job of payments: a thin taskiq wrapper around `checkouts.close` (decabill/jobs).

* `payments.close_superseded_checkouts` (every minute) → `payments.close_checkout` per attempt whose session
  is still to be closed at the processor (`checkouts.due`): a close that failed after its commit (processor
  down), or an attempt whose invoice moved on while nothing closed it.
"""

from __future__ import annotations

import uuid

from decabill.jobs.queue import fan_out, periodic, run_unit, task
from decabill.payments import checkouts


@task("payments.close_checkout")
async def close_checkout(tenant: str, attempt_id: str) -> str:
    return await run_unit("payments.close_checkout", tenant, lambda: checkouts.close(uuid.UUID(attempt_id)))


@periodic("payments.close_superseded_checkouts", interval=lambda _settings: checkouts.RETRY_INTERVAL_MS)
async def close_superseded_checkouts() -> int:
    return await fan_out(checkouts.due, close_checkout, checkouts.BATCH_SIZE)
