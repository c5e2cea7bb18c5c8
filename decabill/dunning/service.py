"""Dunning's public face: the tenant's policy (admin), pausing a customer, the customers by dunning level, and
re-exported for the others — the job's coordinator and unit (run.py), the settlement hook and the two state
changes (suspension.py). Whatever a crash or a provider failure leaves undone, the job's next run finishes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from decabill import db
from decabill.dunning import policy as policies
from decabill.dunning.errors import DunningCustomerNotFound
from decabill.dunning.policy import Policy, current_policy
from decabill.dunning.repository import DunningPauseRepository, DunningPolicyRepository
from decabill.dunning.suspension import today
from decabill.identity.principal import Principal, require_admin
from decabill.identity.service import find_user
from decabill.invoicing import service as invoicing
from decabill.invoicing.repository import InvoiceRepository
from decabill.invoicing.service import Actor
from decabill.subscriptions import service as subscriptions
from decabill.validation import text, timestamp
from models.dunning import DunningPause, DunningPolicy

# Re-exported (`name as name`) for payments and admin (the settlement hook), the tasks and the tests.
from decabill.dunning.run import customers_due as customers_due
from decabill.dunning.run import run_customer as run_customer
from decabill.dunning.suspension import invoice_settled as invoice_settled
from decabill.dunning.suspension import reactivate_customer as reactivate_customer
from decabill.dunning.suspension import suspend_customer as suspend_customer


# --- the policy ----------------------------------------------------------------------------------------------


async def get_policy(principal: Principal) -> Policy:
    require_admin(principal)
    async with db.transaction() as session:
        return await current_policy(session)


async def update_policy(principal: Principal, *, steps: list, enabled: bool = True,
                        bill_while_suspended: bool = True) -> Policy:
    """Replace the tenant's policy (400 naming every problem); audited as `dunning.policy_update` with the
    policy before and after."""
    require_admin(principal)
    parsed = policies.parse_steps(steps, enabled=enabled)
    async with db.transaction() as session:
        repository = DunningPolicyRepository(session)
        before = await current_policy(session)
        await repository.insert_once({"enabled": before.enabled, "steps": before.as_json(),
                                      "bill_while_suspended": before.bill_while_suspended,
                                      "created_at": db.utcnow(), "updated_at": db.utcnow()})
        row: DunningPolicy = await repository.current(for_update=True)
        new = Policy(enabled=enabled, steps=parsed, bill_while_suspended=bill_while_suspended)
        row.enabled, row.steps, row.bill_while_suspended = new.enabled, new.as_json(), new.bill_while_suspended
        row.touch()
        await invoicing.audit_unbound(session, user_id=None, process="dunning.policy_update",
                                      message="Dunning policy updated", actor=Actor.of(principal),
                                      context={"before": _policy_json(before), "after": _policy_json(new)})
        return policies.from_row(row.enabled, row.steps, row.bill_while_suspended, row.updated_at)


def _policy_json(policy: Policy) -> dict:
    return {"enabled": policy.enabled, "steps": policy.as_json(), "billWhileSuspended": policy.bill_while_suspended}


# --- admin: pause, and the customers by level ----------------------------------------------------------------


@dataclass(frozen=True)
class DunningPauseView:
    user_id: uuid.UUID
    dunning_paused_until: dt.datetime | None
    reason: str | None


async def set_pause(principal: Principal, user_id: uuid.UUID, paused_until: str | None,
                    reason: str | None = None) -> DunningPauseView:
    """Pause the customer's dunning until `paused_until` (a payment plan), or end the pause (None). While
    paused no step is applied and a suspension is lifted; audited as `dunning.pause`."""
    require_admin(principal)
    admin = Actor.of(principal)
    reason = text(reason, "Reason", max_length=500) if reason else None
    paused_until = timestamp(paused_until, "pausedUntil") if paused_until is not None else None
    if await find_user(user_id) is None:
        raise DunningCustomerNotFound()
    now = db.utcnow()
    async with db.transaction() as session:
        pauses = DunningPauseRepository(session)
        found = await pauses.of_user(user_id, for_update=True)
        if paused_until is None or paused_until <= now:
            if found is not None:
                await pauses.remove_of_user(user_id)
            paused_until = None
        elif found is None:
            await pauses.create(DunningPause(user_id=user_id, paused_until=paused_until, reason=reason))
        else:
            found.paused_until, found.reason = paused_until, reason
            found.touch()
        await invoicing.audit_unbound(session, user_id=user_id, process="dunning.pause", actor=admin,
                                      message="Dunning paused" if paused_until else "Dunning pause ended",
                                      context={"pausedUntil": paused_until, "reason": reason}, now=now)
        if paused_until is not None:
            await reactivate_customer(session, user_id, cause=None, reason="dunning paused", now=now, actor=admin)
    if paused_until is None:
        await run_customer(user_id)  # re-suspends at once when still owed
    return DunningPauseView(user_id, paused_until, reason)


MAX_OFFSET = 1_000_000


@dataclass(frozen=True)
class DunningCustomerView:
    user_id: uuid.UUID
    email: str | None
    dunning_level: int
    overdue_invoices: int
    balance_due: object
    oldest_due_date: dt.date | None
    suspended_at: dt.datetime | None
    suspended_for_invoice_number: str | None
    dunning_paused_until: dt.datetime | None


@dataclass(frozen=True)
class DunningCustomersPage:
    items: list[DunningCustomerView]
    total: int
    limit: int
    offset: int


async def list_customers(principal: Principal, min_level: int = 0, limit: int = 20,
                         offset: int = 0) -> DunningCustomersPage:
    """Customers with past-due unpaid invoices whose highest dunning level is at least `min_level`, highest
    level first (then the oldest due date)."""
    require_admin(principal)
    now = db.utcnow()
    limit, offset = max(0, min(limit, 100)) or 20, max(0, min(offset, MAX_OFFSET))
    min_level = max(0, min(min_level, policies.MAX_STEPS + 1))
    async with db.transaction() as session:
        rows, total = await InvoiceRepository(session).dunning_levels_page(today(now), min_level, limit, offset)
        user_ids = [row[0] for row in rows]
        pauses = await DunningPauseRepository(session).of_users(user_ids)
        suspensions = await subscriptions.suspensions_of(session, user_ids)
        items = []
        for user_id, email, level, balance, count, oldest in rows:
            suspension = suspensions.get(user_id)
            pause = pauses.get(user_id)
            items.append(DunningCustomerView(
                user_id=user_id, email=email, dunning_level=int(level), overdue_invoices=int(count),
                balance_due=balance, oldest_due_date=oldest,
                suspended_at=suspension.suspended_at if suspension else None,
                suspended_for_invoice_number=suspension.invoice_number if suspension else None,
                dunning_paused_until=pause.paused_until if pause and pause.paused_until > now else None))
    return DunningCustomersPage(items, total, limit, offset)

