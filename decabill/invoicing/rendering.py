"""After the billing day issues an invoice: its PDF (+ Factur-X XML) rendered and stored, then its mail sent —
their own idempotent jobs, a batch of invoices each, so issuing is never held up by rendering or SMTP
(issue #19).

* `invoices.issue(..., defer_documents=True)` / `issue_batch` (the billing day) record, in the issuing
  transaction, an `InvoiceDocumentTask` (`pending`) next to the "invoice issued" mail, which is then *not*
  delivered at the commit; after the commit one job `invoicing.render_documents` is sent per BATCH_SIZE
  of the tasks.
* `render_batch(task_ids)` is one job's work, with a handful of statements for the whole batch: the tasks
  claimed in one UPDATE (`pending` → `rendering`, skipping rows another claim holds locked; a claim older
  than CLAIM_TIMEOUT counts as abandoned), their invoices and lines loaded in two queries, the PDFs made in
  the render pool's processes (`documents.invoice_pdfs`: a PDF already stored — e.g. downloaded before,
  which renders on demand — is just read) and stored, the tasks marked `rendered` in one UPDATE, then the
  batch's mails sent over one SMTP connection with the one mail-sending function of decabill
  (`mail.deliver_many`: its claim makes each mail once-only, and a mail left pending is sent by
  `invoicing.retry_mails`). A failure leaves its task `pending` for a retry (`failed` after MAX_ATTEMPTS).
  One job, one row in the job ledger.
* The coordinator `invoicing.render_due_documents` sends jobs again for tasks left pending (their job was
  lost with its process, kill -9) or abandoned while rendering. Rendering twice writes the same file
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
from decabill.invoicing.repository import (
    InvoiceDocumentRepository,
    InvoiceLineRepository,
    InvoiceRepository,
    MailDeliveryRepository,
)
from decabill.jobs import ledger
from decabill.jobs.queue import enqueue
from decabill.tenancy import current_tenant
from models.invoicing import DocumentStatus

log = structlog.get_logger("decabill.invoicing")

_issuing = 0  # billing-day units (and their coordinator) running in this process
_issuing_done: asyncio.Event | None = None
_statistics_stale = False  # units issued here since the last ANALYZE of the issued tables


@contextlib.asynccontextmanager
async def issuing() -> AsyncIterator[None]:
    """Mark a billing-day unit running in this process: its renders wait until no such unit runs (issue #19).
    Rendering is CPU-bound in threads; next to it the event loop gets the GIL only every switch interval, so
    each of the unit's many database round trips would wait for it and issuing would crawl. Issuing first,
    the numbers and invoices committed, then the PDFs: the targets of the billing day are in that order."""
    global _issuing, _issuing_done, _statistics_stale
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
            _statistics_stale = True


ISSUING_UNITS = ["invoicing.bill_slice", "invoicing.bill_users"]
ISSUING_STALE = dt.timedelta(minutes=2)  # a unit "running" for longer was killed (or is stuck): render anyway
ISSUING_POLL = 0.5


async def after_issuing() -> None:
    """Wait while the billing day issues: a unit in this process, or one recorded running by another worker
    (the job ledger) — the other worker's renders would take the CPU its database round trips wait for.
    A render job waits here BEFORE it takes a queue slot: in the in-process queue an issuing unit is
    recorded running while it still waits for a slot, and render jobs holding every slot while they wait
    for it would wait for each other until ISSUING_STALE.
    The first render job after issuing units ran in this process refreshes the planner's statistics of the
    tables they filled (`InvoiceDocumentRepository.refresh_statistics`)."""
    global _statistics_stale
    while True:
        if _issuing and _issuing_done is not None:
            await _issuing_done.wait()
            continue
        if not await ledger.running_since(ISSUING_UNITS, db.utcnow() - ISSUING_STALE):
            break
        await asyncio.sleep(ISSUING_POLL)
    if _statistics_stale:
        _statistics_stale = False
        try:
            async with db.transaction() as session:
                await InvoiceDocumentRepository(session).refresh_statistics()
        except Exception as exc:  # noqa: BLE001 - only the plans are slower without it
            log.warning("invoicing.analyze_failed", error=str(exc), error_type=type(exc).__name__)


MAX_ATTEMPTS = 5
CLAIM_TIMEOUT = dt.timedelta(minutes=10)
RETRY_AFTER = dt.timedelta(minutes=2)  # younger pending tasks have their job on the queue


BATCH_SIZE = 50  # tasks per render job: the job's bookkeeping shared by as many PDFs, and few enough per claim


async def record(session: AsyncSession, invoice_id: uuid.UUID, now: dt.datetime) -> None:
    """Record the render-then-mail task of an issued invoice (in the issuing transaction); its job is sent
    after the commit."""
    task_id = await InvoiceDocumentRepository(session).record_once(invoice_id, now)
    if task_id is not None:
        db.after_commit(_send(current_tenant(), [task_id]))


async def record_many(session: AsyncSession, invoice_ids: list[uuid.UUID], now: dt.datetime) -> None:
    """`record` for many just-issued invoices at once (the billing day's batch: one INSERT, no task can exist
    yet); one job per BATCH_SIZE of them is sent after the commit."""
    rows = [{"id": uuid.uuid4(), "invoice_id": invoice_id, "status": DocumentStatus.PENDING, "attempts": 0,
             "created_at": now} for invoice_id in invoice_ids]
    await InvoiceDocumentRepository(session).insert_many(rows)
    tenant = current_tenant()
    for first in range(0, len(rows), BATCH_SIZE):
        db.after_commit(_send(tenant, [row["id"] for row in rows[first:first + BATCH_SIZE]]))


def _send(tenant: str, task_ids: list[uuid.UUID]):
    async def send() -> None:
        try:
            await enqueue("invoicing.render_documents", tenant, [str(task_id) for task_id in task_ids])
        except Exception as exc:  # noqa: BLE001 - the tasks are committed; `render_due_documents` sends them later
            log.error("invoicing.render_enqueue_failed", error=str(exc), error_type=type(exc).__name__)

    return send


async def render(task_id: uuid.UUID) -> str:
    """`render_batch` of one task: its status afterwards, or `not_pending` when it is done or being rendered
    by someone else."""
    return (await render_batch([task_id])).get(task_id, "not_pending")


async def render_batch(task_ids: list[uuid.UUID] | None = None, limit: int = BATCH_SIZE) -> dict[uuid.UUID, str]:
    """Render and store the PDFs of the given tasks — or, without `task_ids`, of up to `limit` tasks nobody
    works on — then send their mails (tenant bound; see the module docstring). Returns the status of each
    task we claimed (the others are done or someone else's). Callers wait for `after_issuing()` first."""
    now = db.utcnow()
    async with db.transaction() as session:
        tasks = await InvoiceDocumentRepository(session).claim_many(
            now, CLAIM_TIMEOUT, len(task_ids) if task_ids is not None else limit, task_ids,
            max_attempts=None if task_ids is not None else MAX_ATTEMPTS)
        if not tasks:
            return {}
        invoice_ids = [invoice_id for _task, invoice_id, _attempts in tasks]
        invoices = await InvoiceRepository(session).records(invoice_ids)
        lines = await InvoiceLineRepository(session).records_of_invoices(invoice_ids)
    pdfs = await documents.invoice_pdfs(invoices, lines)
    by_id = {invoice.id: invoice for invoice in invoices}
    statuses: dict[uuid.UUID, str] = {}
    failures: list[tuple[uuid.UUID, str, str]] = []
    for task_id, invoice_id, attempts in tasks:
        pdf = pdfs.get(invoice_id, LookupError("the invoice is gone"))
        if isinstance(pdf, Exception):
            log.error("invoicing.render_failed", error=str(pdf), error_type=type(pdf).__name__)
            status = DocumentStatus.FAILED if attempts >= MAX_ATTEMPTS else DocumentStatus.PENDING
            failures.append((task_id, status, f"{type(pdf).__name__}: {pdf}"[:2000]))
        else:
            status = DocumentStatus.RENDERED
        statuses[task_id] = status
    rendered = [task for task in tasks if statuses[task[0]] == DocumentStatus.RENDERED]
    async with db.transaction() as session:
        repository = InvoiceDocumentRepository(session)
        if rendered:
            await repository.mark_rendered([task_id for task_id, _invoice, _attempts in rendered], db.utcnow())
        for task_id, status, error in failures:
            await repository.mark_not_rendered(task_id, status, error)
        delivery_ids = await MailDeliveryRepository(session).pending_ids(
            [mail.issued_key(invoice_id) for _task, invoice_id, _attempts in rendered]) if rendered else []
    if delivery_ids:
        await _send_mails(delivery_ids, {invoice_id: mail.Prepared(by_id[invoice_id], pdfs[invoice_id])
                                         for _task, invoice_id, _attempts in rendered})
    return statuses


async def _send_mails(delivery_ids: list[uuid.UUID], prepared: dict[uuid.UUID, mail.Prepared]) -> None:
    """The batch's mails, right here (the outbox's claim makes them once-only whoever else tries)."""
    try:
        await mail.deliver_many(delivery_ids, prepared)
    except Exception as exc:  # noqa: BLE001 - the mails are pending; `retry_mails` sends them later
        log.error("invoicing.mail_delivery_failed", kind=mail.INVOICE_ISSUED, error=str(exc),
                  error_type=type(exc).__name__)


async def due_for_rendering(limit: int, retry_after: dt.timedelta = RETRY_AFTER) -> list[uuid.UUID]:
    """Tasks to send again: pending for `retry_after`, or abandoned while rendering; attempts left."""
    now = db.utcnow()
    async with db.transaction() as session:
        return await InvoiceDocumentRepository(session).due_ids(now, MAX_ATTEMPTS, retry_after, CLAIM_TIMEOUT, limit)


async def last_error(task_ids: list[uuid.UUID]) -> str | None:
    async with db.transaction() as session:
        return await InvoiceDocumentRepository(session).last_error(task_ids)


async def unfinished() -> int:
    """The tenant's invoices whose PDF and mail are still to come."""
    async with db.transaction() as session:
        return await InvoiceDocumentRepository(session).unfinished()


