"""Gauges read when /metrics is scraped: what the database and the queue say now, and this process.

Sources (each read on its own; one that fails counts `decabill_metrics_state_errors_total{source}` and
leaves its gauges at their last value — a broken Redis must not hide the mail backlog):

| source   | gauges                                                                              |
|----------|-------------------------------------------------------------------------------------|
| billing  | decabill_billing_day_customers{state=due,invoiced,failed}                           |
| mail     | decabill_mail_deliveries{kind,status}, decabill_mail_oldest_pending_age_seconds     |
| webhooks | decabill_webhook_deliveries{status=pending,failed}                                    |
| jobs     | decabill_job_units{state}, decabill_periodic_job_last_success_timestamp_seconds{job} |
| queue    | decabill_queue_messages{state=waiting,in_flight}, decabill_queue_oldest_message_age_seconds |
| process  | decabill_db_pool_connections{state}, decabill_process_resident_memory_bytes        |

Scrapes read one after the other (several Prometheus servers scraping at once wait for each other
instead of multiplying the queries); a source gives up after READ_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource

import structlog

from decabill.config import Settings
from decabill.observability import metrics

log = structlog.get_logger("decabill.metrics")

READ_TIMEOUT_SECONDS = 10.0
SAMPLE_SECONDS = 10.0  # per-process samples in multi-process mode

_lock: asyncio.Lock | None = None


# --- per process ---------------------------------------------------------------------------------------


def resident_memory_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: the peak is the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sample_process() -> None:
    from decabill import db

    metrics.PROCESS_RSS.set(resident_memory_bytes())
    metrics.GC_FROZEN_OBJECTS.set(gc.get_freeze_count())
    try:
        pool = db.get_engine().pool
    except RuntimeError:
        return
    checked_out = getattr(pool, "checkedout", None)
    checked_in = getattr(pool, "checkedin", None)
    if callable(checked_out) and callable(checked_in):
        in_use = checked_out()
        metrics.DB_POOL.labels("in_use").set(in_use)
        metrics.DB_POOL.labels("open").set(in_use + checked_in())


async def sample_forever() -> None:
    """Multi-process mode: keep this process's samples fresh for whichever process serves /metrics."""
    while True:
        sample_process()
        await asyncio.sleep(SAMPLE_SECONDS)


# --- installation-wide ----------------------------------------------------------------------------------


async def _billing() -> None:
    from decabill.invoicing.service import monitoring
    from decabill.jobs import ledger

    progress = await monitoring.billing_day_progress()
    metrics.BILLING_DAY_CUSTOMERS.labels("due").set(progress.due)
    metrics.BILLING_DAY_CUSTOMERS.labels("invoiced").set(progress.invoiced)
    metrics.BILLING_DAY_CUSTOMERS.labels("failed").set(await ledger.failed_units_of("invoicing.bill_user"))


async def _mail() -> None:
    from decabill import db
    from decabill.invoicing.service import monitoring

    backlog = await monitoring.mail_backlog()
    for kind in {*monitoring.MAIL_KINDS, *(kind for kind, _status in backlog.counts)}:
        for status in monitoring.BACKLOG_STATUSES:
            metrics.MAIL_DELIVERIES.labels(kind, status).set(backlog.counts.get((kind, status), 0))
    age = (db.utcnow() - backlog.oldest_pending).total_seconds() if backlog.oldest_pending else 0.0
    metrics.MAIL_OLDEST_PENDING_AGE.set(max(0.0, age))


async def _webhooks() -> None:
    from decabill.webhooks.service import delivery_backlog

    for status, count in (await delivery_backlog()).items():
        metrics.WEBHOOK_DELIVERIES.labels(status).set(count)


async def _jobs() -> None:
    from decabill.jobs import ledger
    from models.jobs import JobRunStatus

    totals = {JobRunStatus.RUNNING: 0, JobRunStatus.FAILED: 0}
    for count in await ledger.unit_counts():
        totals[count.status] = totals.get(count.status, 0) + count.count
    for state, count in totals.items():
        metrics.JOB_UNITS.labels(state).set(count)
    for run in await ledger.periodic_runs():
        if run.last_success_at is not None:
            metrics.PERIODIC_LAST_SUCCESS.labels(run.task_name).set(run.last_success_at.timestamp())


async def _queue(settings: Settings) -> None:
    from decabill.jobs.inspect import queue_state

    state = await queue_state(settings)
    metrics.QUEUE_MESSAGES.labels("waiting").set(state.waiting)
    metrics.QUEUE_MESSAGES.labels("in_flight").set(state.in_flight)
    metrics.QUEUE_OLDEST_AGE.set(state.oldest_age_seconds)


async def _read(source: str, work) -> None:
    try:
        await asyncio.wait_for(work, READ_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - one source down must not fail the scrape
        metrics.STATE_ERRORS.labels(source).inc()
        log.warning("metrics.source_failed", source=source, error=str(exc) or type(exc).__name__,
                    error_type=type(exc).__name__)


async def refresh(settings: Settings) -> None:
    """Bring every gauge up to date."""
    global _lock
    sample_process()
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        from decabill import db

        try:
            db.get_engine()
            database = True
        except RuntimeError:  # a process without a database: only the queue and itself
            database = False
        if database:
            await _read("billing", _billing())
            await _read("mail", _mail())
            await _read("webhooks", _webhooks())
            await _read("jobs", _jobs())
        await _read("queue", _queue(settings))
