"""Background jobs of dunning: `dunning.run_due` (every DUNNING_SCHEDULER_INTERVAL ms) → `dunning.run_customer`
per customer with something past due, a suspension, or a server owed a start (decabill/dunning/run.py)."""

from __future__ import annotations

import uuid

from decabill.dunning import service as dunning
from decabill.jobs.queue import fan_out, periodic, run_unit, task


@task("dunning.run_customer")
async def run_customer(tenant: str, user_id: str) -> str:
    async def work() -> str:
        run = await dunning.run_customer(uuid.UUID(user_id))
        return f"steps={len(run.steps)} suspended={run.suspended} reactivated={run.reactivated} failed={run.failed}"

    return await run_unit("dunning.run_customer", tenant, work)


@periodic("dunning.run_due", interval=lambda s: s.dunning_scheduler_interval)
async def run_due() -> int:
    return await fan_out(dunning.customers_due, run_customer, 0)
