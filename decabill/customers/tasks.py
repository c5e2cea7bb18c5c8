"""Background jobs of customers: `customers.recheck_vat_ids` (every VIES_RECHECK_INTERVAL ms) →
`customers.recheck_vat_id` per profile whose VAT ID is pending and due for another VIES attempt."""

from __future__ import annotations

import uuid

from decabill.customers import service
from decabill.jobs.queue import fan_out, periodic, run_unit, task

BATCH_SIZE = 100


@task("customers.recheck_vat_id")
async def recheck_vat_id(tenant: str, profile_id: str) -> str:
    return await run_unit("customers.recheck_vat_id", tenant, lambda: service.recheck_vat_id(uuid.UUID(profile_id)))


@periodic("customers.recheck_vat_ids", interval=lambda s: s.vies_recheck_interval)
async def recheck_vat_ids() -> int:
    return await fan_out(service.pending_vat_ids, recheck_vat_id, BATCH_SIZE)
