"""Background job of idempotency keys: `idempotency.delete_expired` (IDEMPOTENCY_CLEANUP_INTERVAL_MS) forgets
the keys whose time is up, tenant by tenant (an expired key is also taken over by its next use)."""

from __future__ import annotations

from decabill.config import get_settings
from decabill.idempotency import service
from decabill.jobs.queue import periodic
from decabill.tenancy import bound_tenant


@periodic("idempotency.delete_expired", interval=lambda s: s.idempotency_cleanup_interval_ms)
async def delete_expired() -> int:
    deleted = 0
    for tenant in get_settings().tenants:
        with bound_tenant(tenant):
            deleted += await service.delete_expired()
    return deleted
