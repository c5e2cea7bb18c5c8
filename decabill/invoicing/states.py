"""The invoice state machine — the ONE place where an invoice's status changes — and its audit trail.

    draft ──issue──▶ issued ──overdue──▶ overdue
                       │  ╲                 │
                       │   payment (part)   │ payment (part) ─▶ partially_paid ──overdue──▶ overdue
                       │                    │
    issued | partially_paid | overdue ──payment (all) / mark_paid──▶ paid ──mark_unpaid──▶ issued | overdue
    issued | partially_paid | overdue ──void──▶ void          (void is final; paid cannot be voided)

Every transition goes through `apply()`, which checks the source status (400 with the reference's
message otherwise), sets the status and what belongs to it (balance, timestamps), and appends an
`InvoiceAuditLog` entry — status before → after, who, which request — in the caller's transaction, so a
change and its audit entry commit or roll back together. Callers lock the invoice row first. The transitions an
operator reacts to also record their webhook event (`invoice.issued`, `.paid`, `.partially_paid`, `.overdue`,
`.voided`) in that transaction.

Used here by issuing, voiding and the overdue job; the payments area (`payment`: partial or full, D14)
and admin billing (`mark_paid`, `mark_unpaid`, admin void) use the same events.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.identity.principal import Principal
from decabill.invoicing.errors import TransitionRefused
from decabill.invoicing.repository import InvoiceAuditLogRepository
from decabill.invoicing.views import InvoiceView
from decabill.webhooks import service as webhooks
from models.invoicing import Invoice, InvoiceAuditLog, InvoiceStatus

S = InvoiceStatus
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Actor:
    """Who caused a change: a job (`system`), a customer, an admin, or the static API key."""

    type: str
    user_id: uuid.UUID | None = None

    @classmethod
    def of(cls, principal: Principal) -> "Actor":
        if principal.user_id is None:
            return cls("api-key")
        return cls("admin" if principal.is_admin else "user", principal.user_id)


SYSTEM = Actor("system")


def _today(now: dt.datetime) -> dt.date:
    return now.astimezone(dt.timezone.utc).date()


# --- side effects of each transition -------------------------------------------------------------


def _issue(invoice: Invoice, now: dt.datetime, _amount: Decimal | None) -> str:
    invoice.issued_at = now
    invoice.amount_paid = ZERO
    invoice.balance_due = invoice.total_gross
    return S.ISSUED


def _overdue(invoice: Invoice, _now: dt.datetime, _amount: Decimal | None) -> str:
    return S.OVERDUE


def _payment(invoice: Invoice, now: dt.datetime, amount: Decimal | None) -> str:
    """D14: a payment below the open balance → partially paid with the balance reduced; otherwise paid."""
    if amount is None or amount <= 0:
        raise ValueError("a payment needs a positive amount")
    invoice.amount_paid = (invoice.amount_paid or ZERO) + amount
    if amount < invoice.balance_due:
        invoice.balance_due = invoice.balance_due - amount
        return S.PARTIALLY_PAID
    invoice.balance_due = ZERO
    invoice.paid_at = now
    return S.PAID


def _mark_paid(invoice: Invoice, now: dt.datetime, _amount: Decimal | None) -> str:
    invoice.balance_due = ZERO
    invoice.paid_at = now
    return S.PAID


def _mark_unpaid(invoice: Invoice, now: dt.datetime, _amount: Decimal | None) -> str:
    invoice.amount_paid = ZERO
    invoice.balance_due = invoice.total_gross
    invoice.paid_at = None
    overdue = invoice.due_date is not None and invoice.due_date < _today(now)
    return S.OVERDUE if overdue else S.ISSUED


def _void(invoice: Invoice, now: dt.datetime, _amount: Decimal | None) -> str:
    invoice.balance_due = ZERO
    invoice.voided_at = now
    invoice.credit_note_number = f"{invoice.invoice_number}-CN"
    return S.VOID


def _void_refusal(invoice: Invoice) -> str:
    if invoice.status == S.PAID:
        return "Cannot void a paid invoice"
    return "Only issued invoices with an invoice number can be voided"


@dataclass(frozen=True)
class Event:
    process: str  # the audit log's process name
    sources: frozenset[str]
    effect: Callable[[Invoice, dt.datetime, Decimal | None], str]  # applies side effects, returns the target
    refusal: Callable[[Invoice], str]
    message: Callable[[Invoice], str]
    by_actor: bool = False  # the entry's user is the acting user (the reference's void), else the invoice's


EVENTS: dict[str, Event] = {
    "issue": Event("invoice.issue", frozenset({S.DRAFT}), _issue,
                   lambda i: "Only draft invoices can be issued", lambda i: f"Issued invoice {i.invoice_number}"),
    "overdue": Event("invoice.overdue", frozenset({S.ISSUED, S.PARTIALLY_PAID}), _overdue,
                     lambda i: f"Invoice in status {i.status} cannot become overdue", lambda i: "Invoice is overdue"),
    # Payments reach an invoice only through a processor's webhook (admins use mark_paid): `payment.webhook`.
    "payment": Event("payment.webhook", frozenset(S.OPEN), _payment,
                     lambda i: f"Cannot record a payment on an invoice in status {i.status}",
                     lambda i: "Payment received"),
    "mark_paid": Event("invoice.mark_paid_manual", frozenset(S.OPEN), _mark_paid,
                       lambda i: f"Cannot mark invoice as paid from status {i.status}",
                       lambda i: "Admin marked invoice as paid"),
    "mark_unpaid": Event("invoice.mark_unpaid_manual", frozenset({S.PAID}), _mark_unpaid,
                         lambda i: "Can only mark unpaid from paid status", lambda i: "Admin marked invoice as unpaid"),
    "void": Event("invoice.void", frozenset(S.OPEN), _void, _void_refusal, lambda i: "Voided invoice", by_actor=True),
}


#: (transition, resulting status) → the webhook event it raises
_WEBHOOK_EVENTS: dict[tuple[str, str], str] = {
    ("issue", S.ISSUED): "invoice.issued",
    ("overdue", S.OVERDUE): "invoice.overdue",
    ("payment", S.PARTIALLY_PAID): "invoice.partially_paid",
    ("payment", S.PAID): "invoice.paid",
    ("mark_paid", S.PAID): "invoice.paid",
    ("void", S.VOID): "invoice.voided",
}


def allowed(invoice: Invoice, event: str) -> bool:
    spec = EVENTS[event]
    if event == "void" and not invoice.invoice_number:
        return False
    return invoice.status in spec.sources


def _transition(invoice: Invoice, event: str, now: dt.datetime, amount: Decimal | None) -> tuple[str, str | None]:
    """Move `invoice` through `event` in memory; (status before, the webhook event it raises or None)."""
    spec = EVENTS[event]
    if not allowed(invoice, event):
        raise TransitionRefused(spec.refusal(invoice))
    before = invoice.status
    invoice.status = spec.effect(invoice, now, amount)
    invoice.touch()
    return before, _WEBHOOK_EVENTS.get((event, invoice.status))


async def apply(session: AsyncSession, invoice: Invoice, event: str, *, actor: Actor,
                now: dt.datetime | None = None, amount: Decimal | None = None,
                context: dict[str, Any] | None = None, message: str | None = None) -> InvoiceAuditLog:
    """Move `invoice` (locked by the caller) through `event`; 400 when its status does not allow it."""
    now = now or db.utcnow()
    spec = EVENTS[event]
    before, announced = _transition(invoice, event, now, amount)
    if announced is not None:  # in this transaction: the outbox (decabill.webhooks.outbox)
        await webhooks.record(session, invoice.tenant_id, announced, InvoiceView(invoice))
    return await audit(session, invoice, spec.process, message or spec.message(invoice), actor=actor,
                       before=before, after=invoice.status, context=context, now=now,
                       user_id=(actor.user_id if spec.by_actor else None))


async def apply_many(session: AsyncSession, invoices: list[Invoice], event: str, *, actor: Actor, now: dt.datetime,
                     context: Callable[[Invoice], dict[str, Any]]) -> None:
    """`apply` to many invoices of the tenant at once (the billing day's batch): the same transitions, audit
    entries and webhook events, written with one statement per kind of row."""
    spec = EVENTS[event]
    entries, announced = [], []
    for invoice in invoices:
        before, webhook_event = _transition(invoice, event, now, None)
        if webhook_event is not None:
            announced.append((webhook_event, invoice))
        entries.append(audit_entry(invoice, spec.process, spec.message(invoice), actor=actor, before=before,
                                   after=invoice.status, context=context(invoice), now=now,
                                   user_id=(actor.user_id if spec.by_actor else None)))
    by_type: dict[str, list[Invoice]] = {}
    for webhook_event, invoice in announced:
        by_type.setdefault(webhook_event, []).append(invoice)
    for webhook_event, subjects in by_type.items():
        await webhooks.record_many(session, subjects[0].tenant_id, webhook_event,
                                   [InvoiceView(invoice) for invoice in subjects])
    await audit_many(session, entries)


def audit_entry(invoice: Invoice, process: str, message: str, *, actor: Actor, level: str = "info",
                before: str | None = None, after: str | None = None, context: dict[str, Any] | None = None,
                now: dt.datetime | None = None, user_id: uuid.UUID | None = None) -> dict[str, Any]:
    """The values of the audit entry for `invoice`; its user is `user_id`, else the invoice's (behavior.md part
    B §7.5's table)."""
    return dict(
        id=ordered_id(),  # time-ordered: see ordered_id() below
        invoice_id=invoice.id, user_id=user_id or invoice.user_id, process=process, level=level,
        message=message[:500], actor_type=actor.type, actor_user_id=actor.user_id, status_before=before,
        status_after=after, context=_jsonable(context or {}), request_id=_request_id(),
        created_at=now or db.utcnow(),
    )


async def audit(session: AsyncSession, invoice: Invoice, process: str, message: str, *, actor: Actor,
                level: str = "info", before: str | None = None, after: str | None = None,
                context: dict[str, Any] | None = None, now: dt.datetime | None = None,
                user_id: uuid.UUID | None = None) -> InvoiceAuditLog:
    """Append an audit entry for `invoice` in the caller's transaction (also for events that change no status)."""
    entry = InvoiceAuditLog(**audit_entry(invoice, process, message, actor=actor, level=level, before=before,
                                          after=after, context=context, now=now, user_id=user_id))
    return await InvoiceAuditLogRepository(session).create(entry)


async def audit_many(session: AsyncSession, entries: list[dict[str, Any]]) -> None:
    """Append many entries (values made by `audit_entry`) in the caller's transaction, in one INSERT."""
    await InvoiceAuditLogRepository(session).insert_many(entries)


def _request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("request_id")
    return str(value)[:128] if value else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (Decimal, uuid.UUID, dt.date)):
        return str(value) if not isinstance(value, dt.datetime) else value.isoformat()
    return value


# --- added by admin billing (issue 8): entries that concern no single invoice; entry ids in write order -----


_last_id_stamp = 0


def ordered_id() -> uuid.UUID:
    """A UUIDv7-layout id (48-bit Unix ms, 12 bits of sub-millisecond time, 62 random bits) that increases
    strictly within the process. Entries of one change often share `created_at` (the business moment passed
    as `now`), so the audit list orders by (created_at, id): equal times fall back to the order of writing."""
    import secrets
    import time

    global _last_id_stamp
    ns = time.time_ns()
    stamp = ((ns // 1_000_000) << 12) | ((ns % 1_000_000) * 4096 // 1_000_000)
    stamp = _last_id_stamp = max(stamp, _last_id_stamp + 1)
    value = ((stamp >> 12) << 80) | (0x7 << 76) | ((stamp & 0xFFF) << 64) | (0b10 << 62) | secrets.randbits(62)
    return uuid.UUID(int=value)


async def audit_unbound(session: AsyncSession, *, user_id: uuid.UUID | None, process: str, message: str,
                        actor: Actor, level: str = "info", context: dict[str, Any] | None = None,
                        now: dt.datetime | None = None) -> InvoiceAuditLog:
    """Append an audit entry without an invoice (a bill-now request, a failed bill-now unit, an admin change
    of a customer profile), in the caller's transaction — same table, same rules as `audit`."""
    entry = InvoiceAuditLog(
        id=ordered_id(), invoice_id=None, user_id=user_id, process=process, level=level,
        message=message[:500], actor_type=actor.type, actor_user_id=actor.user_id, context=_jsonable(context or {}),
        request_id=_request_id(), created_at=now or db.utcnow(),
    )
    return await InvoiceAuditLogRepository(session).create(entry)
