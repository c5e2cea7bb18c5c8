"""Closing checkouts that must not be paid any more, so that a customer with two checkout pages open (two
browser tabs) cannot pay an invoice twice.

A payment attempt becomes `superseded` — never handed out or reused again — when
* a newer checkout of its invoice is recorded (`service._record_session`, in that transaction): the customer's
  Stripe customer or email, the return URLs or the subscription route changed, or the older session was
  about to expire;
* its invoice's open balance changes: a payment or partial payment, an admin's mark paid, a void. Every
  pending attempt with an open session whose invoice is no longer payable, or whose amount is no longer the
  open balance, is superseded. This is watched on `Invoice.balance_due` (an attribute event, so that
  invoicing's void is covered as well as settlement.py) and done after the change commits.

Closing (`close`, after the commit, under a lease per attempt, outside any transaction): the processor's
`expire_checkout(session id)`. Closed → `expired`; completed by the customer first (its payment arrives by
webhook) or not closable by the processor → stays `superseded`; either way `checkout_url` is cleared. A
failure (the processor is down) leaves the attempt `superseded` with its URL: the job
`payments.close_superseded_checkouts` (tasks.py) asks again every minute, and it also finds pending attempts
whose invoice moved on while the process stopped between the commit and the close. Closing is idempotent:
an attempt that is not `superseded` with a URL any more is left alone, and a session that is already closed
is no error for the processor.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal

import structlog
from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.jobs import leases
from decabill.payments.base import CheckoutClosure
from decabill.invoicing.repository import InvoiceRepository
from decabill.payments.registry import get_payment_processors
from decabill.payments.repository import PaymentAttemptRepository
from decabill.tenancy import bound_tenant, current_tenant
from models.invoicing import Invoice, InvoiceStatus
from models.payments import PaymentAttempt, PaymentAttemptStatus

log = structlog.get_logger("decabill.payments")

RETRY_INTERVAL_MS = 60_000  # how often payments.close_superseded_checkouts runs
BATCH_SIZE = 100  # attempts per tenant and run


def payable(attempt: PaymentAttempt, invoice: Invoice | None) -> bool:
    """Whether the attempt still asks for what its invoice owes (the same rule in SQL: `due`)."""
    return invoice is not None and invoice.status in InvoiceStatus.OPEN and attempt.amount == invoice.balance_due


def supersede(attempt: PaymentAttempt) -> None:
    attempt.status = PaymentAttemptStatus.SUPERSEDED
    attempt.touch()


async def supersede_others(session: AsyncSession, attempt: PaymentAttempt) -> list[uuid.UUID]:
    """In the caller's transaction, with the invoice locked: supersede the invoice's other pending attempts."""
    others = await PaymentAttemptRepository(session).other_pending(attempt)
    for other in others:
        supersede(other)
    return [other.id for other in others]


def close_after_commit(attempt_ids: Iterable[uuid.UUID]) -> None:
    """Close these attempts' sessions once the current transaction commits."""
    ids = list(attempt_ids)

    async def listed() -> list[uuid.UUID]:
        return ids

    if ids:
        _after_commit(current_tenant(), listed)


def _after_commit(tenant: str, attempts: Callable[[], Awaitable[list[uuid.UUID]]]) -> None:
    async def run() -> None:
        with bound_tenant(tenant):
            try:
                for attempt_id in await attempts():
                    await close(attempt_id)
            except Exception as exc:  # noqa: BLE001 - the change is committed; the job closes them later
                log.error("payments.checkout_close_failed", error=str(exc), error_type=type(exc).__name__)

    db.after_commit(run)


@event.listens_for(Invoice.balance_due, "set", active_history=True)
def _balance_changed(invoice: Invoice, value: Decimal, old: object, _initiator: object) -> None:
    """An open invoice's balance changes (payment, mark paid, void): close its checkouts after the commit."""
    if not isinstance(old, Decimal) or value == old or invoice.status not in InvoiceStatus.OPEN:
        return
    if not inspect(invoice).persistent:
        return
    invoice_id = invoice.id
    try:
        _after_commit(invoice.tenant_id, lambda: _open_checkouts(invoice_id))
    except RuntimeError:  # changed outside decabill.db.transaction(): the job finds its checkouts
        log.warning("payments.balance_changed_outside_transaction", invoice_id=str(invoice_id))


async def _open_checkouts(invoice_id: uuid.UUID) -> list[uuid.UUID]:
    async with db.transaction() as session:
        return await PaymentAttemptRepository(session).with_checkout_of(invoice_id)


async def due(limit: int) -> list[uuid.UUID]:
    """The job's selection (tenant bound): superseded attempts whose session is still to be closed, and
    pending ones with a session whose invoice is no longer payable or owes another amount."""
    async with db.transaction() as session:
        return await PaymentAttemptRepository(session).to_close(limit)


async def close(attempt_id: uuid.UUID) -> str:
    """Supersede the attempt when its invoice moved on, then close its session at the processor (tenant bound,
    outside a transaction). Returns the attempt's status afterwards, `busy` while another run is closing it,
    `retry` when the processor failed (the job asks again)."""
    async with leases.hold(f"payments.close-checkout:{attempt_id}") as held:
        if not held:
            return "busy"
        async with db.transaction() as session:
            attempt = await _claim(session, attempt_id)
            if attempt is None:
                return "gone"
            if attempt.status != PaymentAttemptStatus.SUPERSEDED or not attempt.checkout_url or not attempt.external_id:
                return attempt.status
            processor_id, external_id = attempt.processor, attempt.external_id
        processor = get_payment_processors().get(processor_id)
        try:
            closure = await processor.expire_checkout(external_id) if processor else CheckoutClosure.LEFT_OPEN
        except Exception as exc:  # noqa: BLE001 - a plugin's failure too: asked again later
            log.warning("payments.checkout_close_failed", processor=processor_id, attempt_id=str(attempt_id),
                        error=str(exc), error_type=type(exc).__name__)
            return "retry"
        async with db.transaction() as session:
            attempt = await PaymentAttemptRepository(session).get(attempt_id, for_update=True)
            assert attempt is not None
            if attempt.status == PaymentAttemptStatus.SUPERSEDED and attempt.checkout_url:
                attempt.checkout_url = None
                if closure == CheckoutClosure.EXPIRED:
                    attempt.status = PaymentAttemptStatus.EXPIRED
                    attempt.completed_at = db.utcnow()
                attempt.touch()
            status = attempt.status
    log.info("payments.checkout_closed", processor=processor_id, attempt_id=str(attempt_id), external_id=external_id,
             closure=closure, status=status)
    return status


async def _claim(session: AsyncSession, attempt_id: uuid.UUID) -> PaymentAttempt | None:
    """The attempt, locked after its invoice (the webhook's order), superseded if its invoice moved on."""
    attempts = PaymentAttemptRepository(session)
    attempt = await attempts.get(attempt_id)
    if attempt is None:
        return None
    invoice = await InvoiceRepository(session).get(attempt.invoice_id, for_update=True)
    attempt = await attempts.get(attempt_id, for_update=True, reload=True)
    assert attempt is not None
    if attempt.status == PaymentAttemptStatus.PENDING and attempt.checkout_url and not payable(attempt, invoice):
        supersede(attempt)
    return attempt
