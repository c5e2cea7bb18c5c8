"""Suspension and reactivation for non-payment — each ONE function in the caller's transaction (the place
where the `subscription.suspended` / `subscription.reactivated` webhook events of #23 are recorded) — and the
server calls that follow their commit.

* `suspend_customer`: the customer's running subscriptions are marked suspended, orders and start/restart
  refused (decabill/subscriptions/suspension.py); audit `dunning.suspended` on the unpaid invoice. Only the
  dunning unit suspends; right after its commit it stops the servers (`stop_servers`), and every run retries
  the ones not stopped yet.
* `reactivate_customer`: the suspension is lifted — at most once: whoever deletes the suspension row
  reactivates — audit `dunning.reactivated`; the servers are started after the commit, retried by the job.
* `invoice_settled`: called by every path that settles an invoice in the same transaction — the payment
  webhook and the admin's mark paid (payments), the admin's void (admin): when the customer is suspended and
  no other invoice of theirs is past due and unpaid, they are reactivated with it. The customer's suspension
  row is locked first, so two settlements of one customer are decided one after the other.
"""

from __future__ import annotations

import datetime as dt
import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.invoicing import service as invoicing
from decabill.invoicing.repository import InvoiceRepository
from decabill.invoicing.service import SYSTEM, Actor
from decabill.subscriptions import service as subscriptions
from models.invoicing import Invoice, InvoiceStatus

log = structlog.get_logger("decabill.dunning")


def today(now: dt.datetime) -> dt.date:
    return now.astimezone(dt.timezone.utc).date()


async def suspend_customer(session: AsyncSession, invoice: Invoice, *, billable: bool, now: dt.datetime,
                           actor: Actor = SYSTEM) -> bool:
    """Suspend the invoice's customer in the caller's transaction; False when they were suspended already."""
    numbers = await subscriptions.suspend(session, invoice.user_id, invoice_id=invoice.id,
                                          invoice_number=invoice.invoice_number, billable=billable, now=now)
    if numbers is None:
        return False
    await invoicing.audit(session, invoice, "dunning.suspended",
                          f"Customer suspended for the unpaid invoice {invoice.invoice_number}", actor=actor,
                          before=invoice.status, after=invoice.status, now=now,
                          context={"subscriptions": numbers, "billWhileSuspended": billable})
    log.info("dunning.suspended", subscriptions=len(numbers))
    return True


async def reactivate_customer(session: AsyncSession, user_id: uuid.UUID, *, cause: Invoice | None, reason: str,
                              now: dt.datetime, actor: Actor = SYSTEM) -> bool:
    """Lift the customer's suspension in the caller's transaction; False when they were not suspended (or
    someone else lifted it first). `cause`: the invoice whose settlement lifts it (audited on it)."""
    numbers = await subscriptions.lift(session, user_id, now)
    if numbers is None:
        return False
    message = f"Customer reactivated: {reason}"
    context = {"subscriptions": numbers, "reason": reason}
    if cause is not None:
        await invoicing.audit(session, cause, "dunning.reactivated", message, actor=actor, before=cause.status,
                              after=cause.status, now=now, context=context)
    else:
        await invoicing.audit_unbound(session, user_id=user_id, process="dunning.reactivated", message=message,
                                      actor=actor, context=context, now=now)
    db.after_commit(lambda: start_servers(user_id))
    log.info("dunning.reactivated", subscriptions=len(numbers))
    return True


async def invoice_settled(session: AsyncSession, invoice: Invoice, *, actor: Actor = SYSTEM) -> bool:
    """The (locked) invoice was just paid or voided in the caller's transaction: reactivate its customer when
    nothing else of theirs is past due and unpaid. True when this reactivated them."""
    if invoice.status in InvoiceStatus.OPEN:
        return False  # a partial payment settles nothing
    suspension = await subscriptions.suspension_of(session, invoice.user_id, lock=True)  # one settlement at a time
    if suspension is None:
        return False
    now = db.utcnow()
    others = await invoicing.past_due_of_user(session, invoice.user_id, today(now), exclude=invoice.id)
    if others:
        if suspension.invoice_id == invoice.id:  # name an invoice that is still unpaid
            await subscriptions.rename_cause(session, invoice.user_id, others[0].id, others[0].invoice_number)
        return False
    settled = "paid" if invoice.status == InvoiceStatus.PAID else invoice.status
    return await reactivate_customer(session, invoice.user_id, cause=invoice, actor=actor, now=now,
                                     reason=f"invoice {invoice.invoice_number} {settled}")


# --- the servers, after the commit ------------------------------------------------------------------------------


async def stop_servers(user_id: uuid.UUID) -> subscriptions.ServerRun:
    """Stop the suspended customer's servers; each one the provider refused is audited (warn) on the invoice
    that caused the suspension and tried again by the next run."""
    run = await _safely(subscriptions.stop_owed_servers, user_id)
    if run.failed:
        async with db.transaction() as session:
            suspension = await subscriptions.suspension_of(session, user_id)
            invoice = await InvoiceRepository(session).get(suspension.invoice_id) if suspension and suspension.invoice_id else None
            message = f"{len(run.failed)} server(s) could not be stopped; retried by the next dunning run"
            context = {"process": "stop", "servers": {str(k): v for k, v in run.failed.items()}}
            if invoice is not None:
                await invoicing.audit(session, invoice, "dunning.server_stop_failed", message, actor=SYSTEM,
                                      level="warn", context=context)
            else:
                await invoicing.audit_unbound(session, user_id=user_id, process="dunning.server_stop_failed",
                                              message=message, actor=SYSTEM, level="warn", context=context)
    return run


async def start_servers(user_id: uuid.UUID) -> subscriptions.ServerRun:
    """Start the servers stopped for a lifted suspension; failures are audited (warn) and retried."""
    run = await _safely(subscriptions.start_owed_servers, user_id)
    if run.failed:
        async with db.transaction() as session:
            await invoicing.audit_unbound(
                session, user_id=user_id, process="dunning.server_start_failed", actor=SYSTEM, level="warn",
                message=f"{len(run.failed)} server(s) could not be started; retried by the next dunning run",
                context={"process": "start", "servers": {str(k): v for k, v in run.failed.items()}})
    return run


async def _safely(work, user_id: uuid.UUID) -> subscriptions.ServerRun:
    try:
        return await work(user_id)
    except Exception as exc:  # noqa: BLE001 - after a commit: the job's next run does it again
        log.error("dunning.servers_failed", error=str(exc), error_type=type(exc).__name__)
        return subscriptions.ServerRun(busy=True)


