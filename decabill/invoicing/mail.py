"""Billing mails (behavior.md part B §9): invoice issued (PDF attached), invoice voided (credit note
attached), invoice overdue, renewal reminder — each sent once per event, even when the job or request
that caused it runs twice.

An event records a `MailDelivery` row under a unique key (`invoice-issued:<invoice id>`, ...) in the same
transaction as the change it reports; a second run finds the key taken and records nothing. After the
commit the row is delivered (`deliver`, which any job may call — it is the crash-safe way to send):

1. claimed by a conditional UPDATE (`pending`, or `sending` whose lease ran out → `sending` under our
   token, lease MAIL_CLAIM_LEASE_SECONDS), renewed every third of the lease while we work;
2. the mail is built (rendering the PDF it carries) with the stable Message-ID `<mail-<delivery id>@...>`;
3. `smtp_started_at` is committed (renewing the lease, checking the claim is still ours), then the SMTP
   transaction runs;
4. the row becomes `sent`, or `pending` again for a retry (`failed` after MAX_ATTEMPTS).

A process killed anywhere leaves the row `pending` (before 1) or `sending` with a lease that runs out; the
`invoicing.retry_mails` job (every MAIL_RETRY_INTERVAL, and once when a scheduler starts) sends it again
within about a lease plus an interval. Killed between the SMTP server's "250 OK" and step 4 — a window of
milliseconds — the mail goes out a second time, with the same Message-ID (logged as
`invoicing.mail_resent_after_crash`, since `smtp_started_at` was set): the one duplicate SMTP cannot rule
out, and one mail clients recognise. Mails of events recorded while SMTP is not configured, or without a
recipient, are `skipped` — never sent later. Mail failures never fail the business operation.

Recipient: the customer profile's email, else the account's email (invoice mails); the profile's email
only (renewal reminders), as the reference does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import html
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db, email
from decabill.config import get_settings
from decabill.catalog.service import find_service_plan
from decabill.invoicing import documents
from decabill.invoicing.repository import InvoiceRepository, MailDeliveryRepository
from decabill.subscriptions.service import find_subscription
from models.invoicing import Invoice, MailDelivery, MailStatus

log = structlog.get_logger("decabill.invoicing")

MAX_ATTEMPTS = 5
RETRY_AFTER = dt.timedelta(seconds=10)  # a younger pending row is being delivered by the process that recorded it

INVOICE_ISSUED = "invoice_issued"
INVOICE_VOIDED = "invoice_voided"
INVOICE_OVERDUE = "invoice_overdue"
RENEWAL_REMINDER = "renewal_reminder"
# Dunning steps (decabill/dunning), keyed `dunning:<invoice>:<days>:<action>`: one mail per step and invoice.
DUNNING_REMIND = "dunning_remind"
DUNNING_SUSPEND = "dunning_suspend"
DUNNING_TERMINATE = "dunning_terminate"
DUNNING_KINDS = {"remind": DUNNING_REMIND, "suspend": DUNNING_SUSPEND, "terminate": DUNNING_TERMINATE}


def issued_key(invoice_id: uuid.UUID) -> str:
    return f"invoice-issued:{invoice_id}"


def _status(recipient: str | None) -> str:
    return MailStatus.PENDING if (get_settings().email_enabled and recipient) else MailStatus.SKIPPED


def _row(key: str, kind: str, recipient: str | None, invoice_id: uuid.UUID | None = None,
         subscription_id: uuid.UUID | None = None, event_at: dt.datetime | None = None) -> dict:
    return {"id": uuid.uuid4(), "key": key, "kind": kind, "invoice_id": invoice_id, "subscription_id": subscription_id,
            "event_at": event_at, "recipient": recipient, "status": _status(recipient), "attempts": 0,
            "created_at": db.utcnow()}


async def record(session: AsyncSession, *, key: str, kind: str, recipient: str | None,
                 invoice_id: uuid.UUID | None = None, subscription_id: uuid.UUID | None = None,
                 event_at: dt.datetime | None = None, deliver_after_commit: bool = True) -> uuid.UUID | None:
    """Record the mail of an event (in the caller's transaction) and deliver it after the commit (unless
    `deliver_after_commit` is False: someone delivers it later, e.g. the render job once the PDF
    it carries is rendered). Returns the delivery id, or None when this event's mail was recorded before."""
    recipient = (recipient or "").strip() or None
    row = _row(key, kind, recipient, invoice_id, subscription_id, event_at)
    delivery_id, status = row["id"], row["status"]
    recorded = await MailDeliveryRepository(session).record_once(row)
    if not recorded:
        return None
    if status == MailStatus.PENDING and deliver_after_commit:
        async def _deliver() -> None:
            try:
                await deliver(delivery_id)
            except Exception as exc:  # noqa: BLE001 - the event is committed; `retry_mails` sends it later
                log.error("invoicing.mail_delivery_failed", kind=kind, error=str(exc), error_type=type(exc).__name__)

        db.after_commit(_deliver)
    elif status != MailStatus.PENDING:
        log.info("invoicing.mail_skipped", kind=kind, reason="no recipient" if recipient is None else "SMTP off")
    return delivery_id


async def record_many(session: AsyncSession,
                      mails: list[tuple[str, str, str | None, uuid.UUID | None]]) -> None:
    """`record(..., deliver_after_commit=False)` of many new events' mails — (key, kind, recipient, invoice id)
    each — in one INSERT (the billing day's batch: the keys are new invoices', so none was recorded before)."""
    rows = [_row(key, kind, (recipient or "").strip() or None, invoice_id) for key, kind, recipient, invoice_id in mails]
    await MailDeliveryRepository(session).insert_many(rows)
    skipped = sum(1 for row in rows if row["status"] != MailStatus.PENDING)
    if skipped:
        log.info("invoicing.mail_skipped", kind=rows[0]["kind"], count=skipped)


def _lease() -> dt.timedelta:
    return dt.timedelta(seconds=get_settings().mail_claim_lease_seconds)


@contextlib.asynccontextmanager
async def _renewing(renew: Callable[[], Awaitable[bool]], every: float) -> AsyncIterator[None]:
    """Call `renew()` every `every` seconds while the block runs."""
    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            if not await renew():
                log.warning("invoicing.mail_claim_lost")
                return

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def deliver(delivery_id: uuid.UUID) -> str:
    """Send one recorded mail unless it is sent, or being sent by someone else (tenant bound). Returns the
    delivery's status afterwards (`not_pending` when there was nothing for us to do)."""
    return (await deliver_many([delivery_id]))[delivery_id]


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What a caller already holds of an invoice mail's contents (the render batch: the invoice it loaded and
    the PDF it made), so composing the mail reads neither again."""

    invoice: Invoice
    pdf: documents.Pdf


async def deliver_many(delivery_ids: list[uuid.UUID], prepared: dict[uuid.UUID, Prepared] | None = None
                       ) -> dict[uuid.UUID, str]:
    """`deliver` of several recorded mails over ONE SMTP connection (tenant bound): all claimed in one
    statement under one token and lease (renewed while we work), composed, then each as before —
    `smtp_started_at` committed right before its SMTP transaction, its outcome committed right after it
    (with the next one's start), so a crash resends at most the one mail in flight. `prepared`: contents
    the caller holds, by invoice id. Returns each delivery's status afterwards."""
    lease, token = _lease(), uuid.uuid4()
    statuses = {delivery_id: "not_pending" for delivery_id in delivery_ids}
    async with db.transaction() as session:
        claimed = await MailDeliveryRepository(session).claim_many(delivery_ids, db.utcnow(), lease, token)
    if not claimed:
        return statuses
    for delivery in claimed:
        if delivery.smtp_started_at is not None:
            log.warning("invoicing.mail_resent_after_crash", kind=delivery.kind, delivery_id=str(delivery.id),
                        attempts=delivery.attempts)

    async def write(outcomes: list[tuple[MailDelivery, str, str | None]], started: MailDelivery | None = None) -> bool:
        """Commit the outcomes (status, error) of sent or failed mails, and the start of `started`'s SMTP
        transaction; whether `started` is still ours. Between two mails of a batch — the last one sent, the next
        one starting — that is ONE statement in autocommit (`advance`, one round trip): the outbox's per-mail
        cost, which the once-only guarantee needs (each mail's state committed before the next SMTP
        transaction; one UPDATE per batch would resend the whole batch after a kill -9)."""
        now = db.utcnow()
        sent = [delivery for delivery, status, _error in outcomes if status == MailStatus.SENT]
        if len(sent) < len(outcomes):  # failures (rare): their own transaction first
            async with db.transaction() as session:
                deliveries = MailDeliveryRepository(session)
                for delivery, status, error in outcomes:
                    if status == MailStatus.SENT:
                        continue
                    if await deliveries.update_claimed(delivery.id, token, status=status, lease_until=None,
                                                       last_error=(error or "")[:2000], smtp_started_at=None):
                        statuses[delivery.id] = status
                    else:
                        log.warning("invoicing.mail_claim_lost", kind=delivery.kind, delivery_id=str(delivery.id),
                                    outcome=status)
        async with db.autocommit() as session:  # one statement, its own transaction: one round trip
            ours = await MailDeliveryRepository(session).advance(
                token, [delivery.id for delivery in sent], started.id if started is not None else None, now,
                now + lease)
        for delivery in sent:
            if delivery.id in ours:
                statuses[delivery.id] = MailStatus.SENT
            else:
                log.warning("invoicing.mail_claim_lost", kind=delivery.kind, delivery_id=str(delivery.id),
                            outcome=MailStatus.SENT)
        return started is not None and started.id in ours

    def failed(delivery: MailDelivery, error: str) -> tuple[MailDelivery, str, str]:
        return delivery, MailStatus.FAILED if delivery.attempts >= MAX_ATTEMPTS else MailStatus.PENDING, error

    async def renew() -> bool:
        async with db.transaction() as session:
            return await MailDeliveryRepository(session).renew_claimed(token, db.utcnow() + lease)

    outcomes: list[tuple[MailDelivery, str, str | None]] = []
    async with _renewing(renew, lease.total_seconds() / 3):
        messages = []
        for delivery in claimed:
            try:
                message = await _compose(delivery, (prepared or {}).get(delivery.invoice_id))
                messages.append((delivery, dataclasses.replace(message, message_id=email.message_id(
                    f"mail-{delivery.id}"))))
            except Exception as exc:  # noqa: BLE001 - a mail must never break what caused it
                log.error("invoicing.mail_failed", kind=delivery.kind, error=str(exc), error_type=type(exc).__name__)
                outcomes.append(failed(delivery, f"{type(exc).__name__}: {exc}"))
        async with email.connection() as send:
            for delivery, message in messages:
                mine = await write(outcomes, delivery)
                outcomes = []
                if not mine:
                    continue  # our lease ran out meanwhile: the one who took it over sends it
                if await send(message):
                    outcomes.append((delivery, MailStatus.SENT, None))
                else:
                    outcomes.append(failed(delivery, "the SMTP server did not accept the mail (see the log)"))
        await write(outcomes)
    return statuses


async def pending_deliveries(limit: int) -> list[uuid.UUID]:
    """Deliveries to retry: pending (or abandoned while sending) for a while, attempts left — but not an invoice
    mail whose PDF is still to be rendered by its render task (pending, or claimed less than a mail lease ago):
    the task's job sends it with the PDF (`invoicing.retry_mails` sends render jobs for the tasks of waiting
    mails whose job was lost, `rendering.due_for_rendering(..., retry_after=RETRY_AFTER)`). A task claimed
    longer ago counts as abandoned here: its mail goes out with the PDF rendered on demand."""
    now = db.utcnow()
    async with db.transaction() as session:
        return await MailDeliveryRepository(session).retry_ids(
            now, MAX_ATTEMPTS, RETRY_AFTER, limit, rendered_first=INVOICE_ISSUED, render_claimed_after=now - _lease())


# --- contents ---------------------------------------------------------------------------------------


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount:.2f} {currency}"


def _day(value: dt.date | dt.datetime | None) -> str:
    if value is None:
        return "soon"
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.timezone.utc).date()
    return value.isoformat()


def _mail(to: str, subject: str, paragraphs: list[str], attachment: documents.Pdf | None = None) -> email.Mail:
    text = "\n\n".join(paragraphs) + "\n"
    body = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    attachments = (email.Attachment(attachment.filename, attachment.content),) if attachment else ()
    return email.Mail(to=to, subject=subject, text=text, html=f"<html><body>{body}</body></html>",
                      attachments=attachments)


def _greeting(invoice: Invoice) -> str:
    return f"Dear {(invoice.buyer or {}).get('first_name') or 'Customer'},"


SIGNATURE = "Kind regards,\nThe Billing Team"


async def _invoice(invoice_id: uuid.UUID) -> Invoice:
    async with db.transaction() as session:
        invoice = await InvoiceRepository(session).get(invoice_id)
    assert invoice is not None
    return invoice


async def _compose(delivery: MailDelivery, prepared: Prepared | None = None) -> email.Mail:
    to = delivery.recipient or ""
    if delivery.kind == INVOICE_ISSUED:
        invoice = prepared.invoice if prepared else await _invoice(delivery.invoice_id)
        lines = [f"Total amount: {_money(invoice.total_gross, invoice.currency)}"]
        if invoice.due_date:
            lines.append(f"Due date: {_day(invoice.due_date)}")
        return _mail(to, f"Your invoice {invoice.invoice_number} is ready", [
            _greeting(invoice), f"your invoice {invoice.invoice_number} is now available.", "\n".join(lines),
            "The invoice is attached to this email as a PDF (with its e-invoice data embedded) and is also "
            "available in your billing account.", SIGNATURE,
        ], prepared.pdf if prepared else await documents.invoice_pdf(invoice.id))
    if delivery.kind == INVOICE_VOIDED:
        invoice = await _invoice(delivery.invoice_id)
        return _mail(to, f"Credit note {invoice.credit_note_number} for invoice {invoice.invoice_number}", [
            _greeting(invoice), f"your invoice {invoice.invoice_number} has been voided.",
            f"The attached credit note {invoice.credit_note_number} confirms the cancellation. Nothing is owed on "
            "this invoice any more; the original invoice remains available in your billing account.", SIGNATURE,
        ], await documents.credit_note_pdf(invoice.id))
    if delivery.kind == INVOICE_OVERDUE:
        invoice = await _invoice(delivery.invoice_id)
        return _mail(to, f"Invoice {invoice.invoice_number} is overdue", [
            _greeting(invoice),
            f"the payment of your invoice {invoice.invoice_number} was due on {_day(invoice.due_date)}.",
            f"Open balance: {_money(invoice.balance_due, invoice.currency)}",
            "Please pay the open balance at your earliest convenience. If you have already paid, please "
            "disregard this message.", SIGNATURE,
        ])
    if delivery.kind in DUNNING_KINDS.values():
        return await _dunning_mail(to, delivery)
    if delivery.kind == RENEWAL_REMINDER:
        async with db.transaction():
            subscription = await find_subscription(delivery.subscription_id)
            plan = await find_service_plan(subscription.plan_id)
        return _mail(to, f"Upcoming subscription renewal: {plan.name}", [
            "Dear Customer,",
            f"your subscription {subscription.number} ({plan.name}) renews on {_day(delivery.event_at)}.",
            "If you do not want it to renew, cancel the subscription before the renewal date.", SIGNATURE,
        ])
    raise ValueError(f"unknown mail kind {delivery.kind!r}")


async def record_dunning_mail(session: AsyncSession, invoice: Invoice, *, days: int, action: str,
                              recipient: str | None, now: dt.datetime) -> uuid.UUID | None:
    """The mail of a dunning step (in the step's transaction): once per invoice and step."""
    return await record(session, key=f"dunning:{invoice.id}:{days}:{action}", kind=DUNNING_KINDS[action],
                        recipient=recipient, invoice_id=invoice.id, event_at=now)


def pay_link(tenant: str, invoice: Invoice) -> str:
    """Where the customer pays the invoice: the tenant's billing console."""
    return f"{get_settings().frontend_base(tenant)}/invoices?invoiceRefId={invoice.id}"


async def _dunning_mail(to: str, delivery: MailDelivery) -> email.Mail:
    invoice = await _invoice(delivery.invoice_id)
    number, due = invoice.invoice_number, _day(invoice.due_date)
    subject, opening, consequence = {
        DUNNING_REMIND: (f"Payment reminder: invoice {number} is overdue",
                         f"we have not yet received the payment of your invoice {number}, due on {due}.",
                         "If the invoice stays unpaid, your services will be suspended."),
        DUNNING_SUSPEND: (f"Your services are suspended: invoice {number} is unpaid",
                          f"your invoice {number}, due on {due}, is still unpaid, so your servers have been "
                          "stopped and new orders are on hold.",
                          "They are started again automatically as soon as the invoice is paid."),
        DUNNING_TERMINATE: (f"Subscriptions terminated: invoice {number} is unpaid",
                            f"your invoice {number}, due on {due}, remained unpaid, so your subscriptions have "
                            "been cancelled and their servers deleted.",
                            "The open balance, and the final charge of the subscriptions, remain due."),
    }[delivery.kind]
    return _mail(to, subject, [
        _greeting(invoice), opening, f"Amount due: {_money(invoice.balance_due, invoice.currency)}",
        f"Pay now: {pay_link(delivery.tenant_id, invoice)}", consequence,
        "If you have already paid, please disregard this message.", SIGNATURE,
    ])
