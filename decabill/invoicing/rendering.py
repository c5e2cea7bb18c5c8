"""After the billing day issues an invoice: its PDF (+ Factur-X XML) rendered and stored, then its mail sent —
each its own idempotent job, so issuing is never held up by rendering or SMTP (issue #19).

* `invoices.issue(..., defer_documents=True)` (the billing day) records, in the issuing transaction, an
  `InvoiceDocumentTask` (`pending`) next to the "invoice issued" mail, which is then *not* delivered at the
  commit; after the commit the job `invoicing.render_document` is sent for the task.
* `render(task_id)` claims the task (`pending` → `rendering`, a conditional UPDATE; a claim older than
  CLAIM_TIMEOUT counts as abandoned), renders and stores the PDF through the download path
  (`documents.invoice_pdf`: a PDF already stored — e.g. downloaded before, which renders on demand — is
  just read), marks the task `rendered` and, right after that commit, sends the invoice's mail itself with
  the one mail-sending function of decabill (`mail.deliver`: its claim makes the mail once-only, and a mail
  left pending is sent by `invoicing.retry_mails`). A failure leaves the task `pending` for a retry
  (`failed` after MAX_ATTEMPTS).
* The coordinator `invoicing.render_due_documents` sends the job again for tasks left pending (the job
  was lost with its process, kill -9) or abandoned while rendering. Rendering twice writes the same file
  twice; the mail outbox sends the mail once whatever happens here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.invoicing import documents, mail
from decabill.invoicing.repository import InvoiceDocumentRepository, MailDeliveryRepository
from decabill.jobs import ledger
from decabill.jobs.queue import enqueue
from decabill.tenancy import current_tenant
from models.invoicing import DocumentStatus

log = structlog.get_logger("decabill.invoicing")

_issuing = 0  # billing-day units (and their coordinator) running in this process
_issuing_done: asyncio.Event | None = None


@contextlib.asynccontextmanager
async def issuing() -> AsyncIterator[None]:
    """Mark a billing-day unit running in this process: its renders wait until no such unit runs (issue #19).
    Rendering is CPU-bound in threads; next to it the event loop gets the GIL only every switch interval, so
    each of the unit's many database round trips would wait for it and issuing would crawl. Issuing first,
    the numbers and invoices committed, then the PDFs: the targets of the billing day are in that order."""
    global _issuing, _issuing_done
    if _issuing_done is None:
        _issuing_done = asyncio.Event()
    _issuing += 1
    _issuing_done.clear()
    try:
        yield
    finally:
        _issuing -= 1
        if not _issuing:
            _issuing_done.set()


ISSUING_UNITS = ["invoicing.bill_slice", "invoicing.bill_users"]
ISSUING_STALE = dt.timedelta(minutes=2)  # a unit "running" for longer was killed (or is stuck): render anyway
ISSUING_POLL = 0.5


async def _after_issuing() -> None:
    """Wait while the billing day issues: a unit in this process, or one recorded running by another worker
    (the job ledger) — the other worker's renders would take the CPU its database round trips wait for."""
    while True:
        if _issuing and _issuing_done is not None:
            await _issuing_done.wait()
            continue
        if not await ledger.running_since(ISSUING_UNITS, db.utcnow() - ISSUING_STALE):
            return
        await asyncio.sleep(ISSUING_POLL)


MAX_ATTEMPTS = 5
CLAIM_TIMEOUT = dt.timedelta(minutes=10)
RETRY_AFTER = dt.timedelta(minutes=2)  # younger pending tasks have their job on the queue


async def record(session: AsyncSession, invoice_id: uuid.UUID, now: dt.datetime) -> None:
    """Record the render-then-mail task of an issued invoice (in the issuing transaction); its job is sent
    after the commit."""
    task_id = await InvoiceDocumentRepository(session).record_once(invoice_id, now)
    if task_id is not None:
        db.after_commit(_send(current_tenant(), task_id))


async def record_many(session: AsyncSession, invoice_ids: list[uuid.UUID], now: dt.datetime) -> None:
    """`record` for many just-issued invoices at once (the billing day's batch: one INSERT, no task can exist
    yet); their jobs are sent after the commit."""
    rows = [{"id": uuid.uuid4(), "invoice_id": invoice_id, "status": DocumentStatus.PENDING, "attempts": 0,
             "created_at": now} for invoice_id in invoice_ids]
    await InvoiceDocumentRepository(session).insert_many(rows)
    tenant = current_tenant()
    for row in rows:
        db.after_commit(_send(tenant, row["id"]))


def _send(tenant: str, task_id: uuid.UUID):
    async def send() -> None:
        try:
            await enqueue("invoicing.render_document", tenant, str(task_id))
        except Exception as exc:  # noqa: BLE001 - the task is committed; `render_due_documents` sends it later
            log.error("invoicing.render_enqueue_failed", error=str(exc), error_type=type(exc).__name__)

    return send


async def render(task_id: uuid.UUID) -> str:
    """Render and store one invoice's PDF, then send its mail (tenant bound). Returns the task's status, or
    `not_pending` when it is done or being rendered by someone else."""
    await _after_issuing()
    now = db.utcnow()
    async with db.transaction() as session:
        task = await InvoiceDocumentRepository(session).claim(task_id, now, CLAIM_TIMEOUT)
        if task is None:
            return "not_pending"
    error: str | None = None
    try:
        await documents.invoice_pdf(task.invoice_id)
    except Exception as exc:  # noqa: BLE001 - recorded on the task and retried
        log.error("invoicing.render_failed", error=str(exc), error_type=type(exc).__name__)
        error = f"{type(exc).__name__}: {exc}"
    delivery_id: uuid.UUID | None = None
    async with db.transaction() as session:
        row = await InvoiceDocumentRepository(session).get(task_id)
        assert row is not None
        if error is None:
            row.status, row.rendered_at, row.last_error = DocumentStatus.RENDERED, db.utcnow(), None
            delivery_id = await MailDeliveryRepository(session).pending_id(mail.issued_key(task.invoice_id))
        else:
            row.status = DocumentStatus.FAILED if row.attempts >= MAX_ATTEMPTS else DocumentStatus.PENDING
            row.last_error = error[:2000]
        status = row.status
    if delivery_id is not None:
        await _send_mail(delivery_id)
    return status


async def _send_mail(delivery_id: uuid.UUID) -> None:
    """The invoice's mail, right here (the outbox's claim makes it once-only whoever else tries)."""
    try:
        await mail.deliver(delivery_id)
    except Exception as exc:  # noqa: BLE001 - the mail is pending; `retry_mails` sends it later
        log.error("invoicing.mail_delivery_failed", kind=mail.INVOICE_ISSUED, error=str(exc),
                  error_type=type(exc).__name__)


async def due_for_rendering(limit: int) -> list[uuid.UUID]:
    """Tasks to send again: pending for a while, or abandoned while rendering; attempts left."""
    now = db.utcnow()
    async with db.transaction() as session:
        return await InvoiceDocumentRepository(session).due_ids(now, MAX_ATTEMPTS, RETRY_AFTER, CLAIM_TIMEOUT, limit)


async def unworked(limit: int) -> list[uuid.UUID]:
    """Tasks no live process works on: pending of any age (nobody holds a claim on them; a job that still
    comes for one finds it done), or abandoned while rendering; attempts left."""
    now = db.utcnow()
    async with db.transaction() as session:
        return await InvoiceDocumentRepository(session).due_ids(now, MAX_ATTEMPTS, None, CLAIM_TIMEOUT, limit)


async def last_error(task_ids: list[uuid.UUID]) -> str | None:
    async with db.transaction() as session:
        return await InvoiceDocumentRepository(session).last_error(task_ids)


async def unfinished() -> int:
    """The tenant's invoices whose PDF and mail are still to come."""
    async with db.transaction() as session:
        return await InvoiceDocumentRepository(session).unfinished()


