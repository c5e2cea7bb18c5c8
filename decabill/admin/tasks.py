"""Background jobs of admin billing: thin taskiq wrappers (decabill/jobs).

| task | sent by | does |
|------|---------|------|
| `admin.bill_now` (coordinator, on demand) | `adminBillNow` | resolves the target users when it runs, sends one `admin.bill_now_user` each |
| `admin.bill_now_user` (unit) | `admin.bill_now` | `decabill.admin.bill_now.bill_now_user`: the billing day's `bill_user` plus the bill-now audit entries |
"""

from __future__ import annotations

import uuid

from decabill.admin import bill_now as service
from decabill.jobs.queue import enqueue, run_unit, task
from decabill.tenancy import bound_tenant


@task("admin.bill_now_user")
async def bill_now_user(tenant: str, user_id: str, request_id: str, admin_id: str, scope: str) -> str:
    return await run_unit("admin.bill_now_user", tenant, lambda: service.bill_now_user(
        uuid.UUID(user_id), request_id=uuid.UUID(request_id), admin_id=uuid.UUID(admin_id), scope=scope))


@task("admin.bill_now")
async def bill_now(tenant: str, request_id: str, admin_id: str, scope: str, user_id: str | None = None) -> int:
    with bound_tenant(tenant):
        users = await service.target_users(scope, uuid.UUID(user_id) if user_id else None)
    for target in users:
        await enqueue(bill_now_user, tenant, str(target), request_id, admin_id, scope)
    return len(users)
