"""Admin bill-now (behavior.md part B §2.6): invoice open positions at once, regardless of billing days.

The request answers `{queued, requestId, userCount}` immediately; the billing runs on the job layer:

    POST /admin/billing/bill-now ──▶ admin.bill_now (coordinator: who has something unbilled *now*)
                                        └──▶ admin.bill_now_user, one per user ──▶ invoicing.invoicing.bill_user

* The per-user work is the billing day's own unit, `decabill.invoicing.invoicing.bill_user` — one
  transaction under the user's billing lock that claims what is unbilled, invoices and issues it. A
  bill-now unit and a billing-day unit for the same user at the same moment therefore bill once: the
  second finds the lock taken (PostgreSQL) or, after the first committed, nothing left unbilled.
* `userId` given: that user of the tenant (400 `User not found` otherwise), userCount 1. Omitted: every
  user of the tenant with unbilled open positions or usage, counted at request time and resolved again
  when the coordinator runs. Users with nothing billable are skipped without an entry.
* Audit: the request itself (`invoice.bill_now_request`, no invoice); per invoice made,
  `invoice.bill_now` "Admin bill-now created invoice" in the invoice's own transaction; a failing user
  `invoice.bill_now` level `error` "Admin bill-now failed for user" (no invoice). Context of all:
  triggeredBy (the admin), scope (`user` | `all`), requestId; and the entries of the run carry the
  bill-now requestId as their request id, so the whole run is found under it.
* Needs an admin *user* (the static API key → 400 `User not authenticated`).
"""

from __future__ import annotations

import uuid

import structlog
from decabill import db
from decabill.admin.errors import BillNowUserNotFound
from decabill.admin.views import BillNowView
from decabill.errors import ServiceUnavailable
from decabill.identity.principal import Principal
from decabill.identity.service import find_user
from decabill.invoicing import service as invoicing
from decabill.invoicing.repository import InvoiceRepository
from decabill.invoicing.service import Actor, BillingResult, users_with_unbilled
from decabill.jobs.queue import enqueue
from decabill.tenancy import current_tenant

log = structlog.get_logger("decabill.admin")

SCOPE_USER = "user"
SCOPE_ALL = "all"


async def request_bill_now(principal: Principal, user_id: uuid.UUID | None = None) -> BillNowView:
    admin_id = principal.require_user_id()
    request_id = uuid.uuid4()
    scope = SCOPE_USER if user_id is not None else SCOPE_ALL
    async with db.transaction() as session:
        if user_id is not None:
            if await find_user(user_id) is None:
                raise BillNowUserNotFound()
            count = 1
        else:
            count = len(await users_with_unbilled())
        await invoicing.audit_unbound(session, user_id=user_id, process="invoice.bill_now_request",
                                   message="Admin requested bill-now", actor=Actor.of(principal),
                                   context={"triggeredBy": admin_id, "scope": scope, "requestId": request_id,
                                            "userId": user_id, "userCount": count})
    try:
        await enqueue("admin.bill_now", current_tenant(), str(request_id), str(admin_id), scope,
                      str(user_id) if user_id else None)
    except Exception as exc:  # the queue (Redis) is down: say so instead of a bare 500
        log.error("admin.bill_now_enqueue_failed", request_id=str(request_id), error=str(exc))
        raise ServiceUnavailable("The billing queue is not available; please try again") from exc
    return BillNowView(queued=True, request_id=request_id, user_count=int(count))


async def target_users(scope: str, user_id: uuid.UUID | None) -> list[uuid.UUID]:
    """The coordinator's targets, resolved when it runs."""
    if scope == SCOPE_USER and user_id is not None:
        return [user_id]
    return await users_with_unbilled()


async def bill_now_user(user_id: uuid.UUID, *, request_id: uuid.UUID, admin_id: uuid.UUID, scope: str) -> str:
    """The bill-now unit: the billing day's `bill_user` for one user, with the bill-now entries in its
    transaction. Returns `billed`, `nothing` or `busy` (another unit is billing that user right now)."""
    actor = Actor("admin", admin_id)
    context = {"triggeredBy": admin_id, "scope": scope, "requestId": request_id}
    result: BillingResult | None = None
    with structlog.contextvars.bound_contextvars(request_id=str(request_id)):
        try:
            async with db.transaction() as session:
                result = await invoicing.bill_user(user_id, actor=actor)
                for invoice in result.invoices:
                    await invoicing.audit(session, invoice, "invoice.bill_now", "Admin bill-now created invoice",
                                       actor=actor, context=context)
        except Exception as exc:
            if result is not None and result.invoices and await _exists(result.invoices[0].id):
                # committed: what failed ran after the commit (e.g. a mail) — the invoice stands
                log.error("admin.bill_now_after_commit_failed", error=str(exc), error_type=type(exc).__name__)
                return result.status
            async with db.transaction() as session:
                await invoicing.audit_unbound(session, user_id=user_id, process="invoice.bill_now", level="error",
                                           message="Admin bill-now failed for user", actor=actor,
                                           context={**context, "error": str(exc)[:300]})
            raise
    return result.status


async def _exists(invoice_id: uuid.UUID) -> bool:
    async with db.transaction() as session:
        return await InvoiceRepository(session).get(invoice_id) is not None
