"""The dunning job (README "Dunning"): coordinator `dunning.run_due` → unit `dunning.run_customer`, one per
customer, like the billing day. "Now" is `decabill.db.utcnow()` (the clock tests move).

Which customers: those with an unpaid invoice past its due date, those suspended, and those with a server
still owed a start after their suspension was lifted.

The unit, for one customer:
1. **Steps.** Unless the policy is off or the customer's dunning is paused, each past-due unpaid invoice gets
   its next step (its `dunningLevel` + 1) once the invoice is that many days past due *and* the previous step
   was applied at least the policy's gap between the two before — so a customer always has the policy's time
   between a reminder and the suspension, even when dunning was switched on for invoices long overdue, or the
   job did not run for a while. At most one step per invoice and run. A step is ONE transaction: the invoice
   row locked and its level re-checked, the step inserted under the UNIQUE (invoice, days, action) key (a
   second worker's insert is refused and it does nothing), the invoice's level, the audit entry
   `dunning.<action>`, the step's mail (once: its key is the step's), and for `suspend`/`terminate` the
   suspension; for `terminate` the running subscriptions are cancelled with immediate effect.
2. **State.** Suspended when not paused and an invoice at a suspend (or terminate) step is unpaid; lifted when
   nothing is past due and unpaid any more, or dunning is paused for the customer. (A suspension that a
   payment should have lifted, e.g. after a voidInvoice, is lifted here.)
3. **Servers**, after the commits: stop every server of suspended subscriptions not stopped yet, start every
   server stopped for a lifted suspension; the provider's failures are audited and tried again next run.
   Terminated subscriptions are wound down by the expiration unit (servers deleted, the final charge recorded,
   invoiced on the billing day); what fails there the expiration job finishes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

import structlog

from decabill import db
from decabill.dunning.policy import SUSPENDING, Policy, Step, current_policy
from decabill.dunning.repository import DunningPauseRepository, DunningStepRepository
from decabill.dunning.suspension import reactivate_customer, start_servers, stop_servers, suspend_customer, today
from decabill.invoicing import service as invoicing
from decabill.invoicing.repository import InvoiceRepository
from decabill.invoicing.service import SYSTEM
from decabill.subscriptions import service as subscriptions
from models.dunning import DunningAction, DunningStep
from models.invoicing import Invoice, InvoiceStatus

log = structlog.get_logger("decabill.dunning")


async def customers_due(limit: int = 0) -> list[uuid.UUID]:
    """The tenant's customers the unit has something to look at (see the module's docstring)."""
    now = db.utcnow()
    async with db.transaction() as session:
        found = set(await InvoiceRepository(session).users_with_past_due(today(now)))
    found.update(await subscriptions.suspended_users())
    found.update(await subscriptions.users_with_servers_to_start())
    due = sorted(found)
    return due[:limit] if limit else due


@dataclass
class CustomerRun:
    """What one unit did for a customer (the tests read it; the job logs it)."""

    steps: list[tuple[str, int, str]] = field(default_factory=list)  # (invoice number, level, action)
    suspended: bool = False
    reactivated: bool = False
    stopped: int = 0
    started: int = 0
    failed: int = 0
    terminated: list[uuid.UUID] = field(default_factory=list)


def _next_step(policy: Policy, invoice: Invoice, day: dt.date) -> tuple[int, Step] | None:
    """(its level, the step) when the invoice's next step is due on `day`; None otherwise."""
    level = invoice.dunning_level or 0
    if level >= len(policy.steps) or invoice.due_date is None:
        return None
    step = policy.steps[level]
    if (day - invoice.due_date).days < step.days:
        return None
    if level > 0 and invoice.dunning_applied_at is not None:  # the policy's gap since the previous step
        gap = max(step.days - policy.steps[level - 1].days, 0)
        if today(invoice.dunning_applied_at) + dt.timedelta(days=gap) > day:
            return None
    return level + 1, step


async def _apply_step(invoice_id: uuid.UUID, level: int, step: Step, policy: Policy, now: dt.datetime,
                      run: CustomerRun) -> None:
    async with db.transaction() as session:
        invoice = await invoicing.locked(session, invoice_id)
        if (invoice is None or invoice.status not in InvoiceStatus.OPEN or (invoice.dunning_level or 0) != level - 1
                or invoice.due_date is None or invoice.due_date >= today(now)):
            return  # paid, voided or advanced by another worker meanwhile
        applied = await DunningStepRepository(session).create_unless_taken(DunningStep(
            invoice_id=invoice.id, user_id=invoice.user_id, level=level, days=step.days, action=step.action,
            applied_at=now))
        if not applied:
            return
        invoicing.set_dunning_level(invoice, level, step.action, now)
        overdue_days = (today(now) - invoice.due_date).days
        await invoicing.audit(session, invoice, f"dunning.{step.action}",
                              f"Dunning step {level} ({step.action}, {step.days} days after the due date) applied",
                              actor=SYSTEM, before=invoice.status, after=invoice.status, now=now,
                              context={"level": level, "days": step.days, "action": step.action,
                                       "daysOverdue": overdue_days, "balanceDue": invoice.balance_due})
        await invoicing.record_dunning_mail(session, invoice, days=step.days, action=step.action, now=now,
                                            recipient=await invoicing.recipient(session, invoice))
        if step.action in SUSPENDING:
            run.suspended |= await suspend_customer(session, invoice, billable=policy.bill_while_suspended, now=now)
        if step.action == DunningAction.TERMINATE:
            ended = await subscriptions.end_all_now(session, invoice.user_id, now)
            if ended:
                await invoicing.audit(session, invoice, "dunning.terminated",
                                      f"{len(ended)} subscription(s) cancelled with immediate effect", actor=SYSTEM,
                                      before=invoice.status, after=invoice.status, now=now,
                                      context={"subscriptions": [str(s) for s in ended]})
            run.terminated.extend(ended)
        run.steps.append((invoice.invoice_number, level, step.action))


async def _reconcile(user_id: uuid.UUID, paused: bool, now: dt.datetime, run: CustomerRun) -> None:
    """Suspend or lift so that the state matches the invoices (module docstring, 2.)."""
    async with db.transaction() as session:
        suspension = await subscriptions.suspension_of(session, user_id, lock=True)
        past_due = await invoicing.past_due_of_user(session, user_id, today(now))
        holding = [i for i in past_due if i.dunning_action in SUSPENDING]
        if suspension is None and holding and not paused:
            policy = await current_policy(session)
            run.suspended |= await suspend_customer(session, holding[0], billable=policy.bill_while_suspended, now=now)
        elif suspension is not None and (paused or not past_due):
            reason = "dunning paused" if paused else "no unpaid invoice past its due date"
            run.reactivated = await reactivate_customer(session, user_id, cause=None, reason=reason, now=now)


async def run_customer(user_id: uuid.UUID) -> CustomerRun:
    """The dunning unit for one customer of the bound tenant (module docstring)."""
    now = db.utcnow()
    run = CustomerRun()
    async with db.transaction() as session:
        policy = await current_policy(session)
        paused = await DunningPauseRepository(session).active_of_user(user_id, now) is not None
        candidates = await invoicing.past_due_of_user(session, user_id, today(now))
    if policy.enabled and not paused:
        for invoice in candidates:
            found = _next_step(policy, invoice, today(now))
            if found is not None:
                await _apply_step(invoice.id, *found, policy, now, run)
    await _reconcile(user_id, paused, now, run)
    if run.terminated:
        await subscriptions.wind_down_ended(run.terminated)
    stopped = await stop_servers(user_id)
    started = await start_servers(user_id)
    run.stopped, run.started = len(stopped.done), len(started.done)
    run.failed = len(stopped.failed) + len(started.failed)
    if run.steps or run.suspended or run.reactivated or run.stopped or run.started or run.failed:
        log.info("dunning.customer_run", steps=len(run.steps), suspended=run.suspended, reactivated=run.reactivated,
                 stopped=run.stopped, started=run.started, failed=run.failed)
    return run
