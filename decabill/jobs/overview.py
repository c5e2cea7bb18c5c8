"""`decabill jobs`: what is queued, running and failed, and when each periodic job last ran; and
`decabill jobs retry-failed`. Plain text for a terminal, one line per thing (see README "Operating")."""

from __future__ import annotations

import datetime as dt

from decabill import db
from decabill.config import Settings
from decabill.jobs import ledger
from decabill.jobs.inspect import queue_state
from decabill.jobs.queue import PERIODIC, get_broker, is_in_process, load_tasks
from decabill.jobs.runtime import interval_seconds
from models.jobs import JobRunStatus, JobUnitRun

LISTED = 20  # units listed per status (the counts are complete)


def _when(moment: dt.datetime | None, now: dt.datetime) -> str:
    if moment is None:
        return "never"
    seconds = int((now - moment).total_seconds())
    if seconds < 120:
        ago = f"{seconds} s"
    elif seconds < 7200:
        ago = f"{seconds // 60} min"
    elif seconds < 172800:
        ago = f"{seconds // 3600} h"
    else:
        ago = f"{seconds // 86400} d"
    return f"{moment.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M:%S}Z ({ago} ago)"


def _unit_arguments(unit) -> str:
    args = (unit.args or {}).get("args", [])
    return " ".join(str(a) for a in args)


async def overview(settings: Settings) -> str:
    load_tasks()
    now = db.utcnow()
    lines = []
    if settings.redis_url:
        queue = await queue_state(settings, by_task=True)
        prefix = settings.redis_key_prefix
        lines.append(f"queue (Redis stream {prefix}:jobs): {queue.waiting} waiting, {queue.in_flight} in flight"
                     + (f", oldest {queue.oldest_age_seconds:.0f} s old" if queue.waiting or queue.in_flight else ""))
        for task, count in sorted(queue.waiting_by_task.items()):
            lines.append(f"  waiting  {task}  {count}")
    else:
        lines.append("queue: in-process (no Redis): jobs wait inside the `decabill serve` process; "
                     "see decabill_queue_messages on its /metrics")
    counts = {(c.task_name, c.status): c for c in await ledger.unit_counts()}
    for status, title in ((JobRunStatus.RUNNING, "running"), (JobRunStatus.FAILED, "failed")):
        total = sum(c.count for (_name, s), c in counts.items() if s == status)
        lines.append(f"{title} units: {total}")
        for unit in await ledger.units(status, LISTED):
            if status == JobRunStatus.RUNNING:
                lines.append(f"  {unit.task_name}  {_unit_arguments(unit)}  since {_when(unit.started_at, now)}"
                             f"  on {unit.worker or '?'}")
            else:
                error = (unit.error or "").splitlines()[0][:200] if unit.error else ""
                lines.append(f"  {unit.task_name}  {_unit_arguments(unit)}  failed {unit.attempts}x, last "
                             f"{_when(unit.finished_at, now)}: {unit.error_type}: {error}")
        if total > LISTED:
            lines.append(f"  ... and {total - LISTED} more")
    runs = {run.task_name: run for run in await ledger.periodic_runs()}
    lines.append("periodic jobs:")
    for name in sorted(PERIODIC):
        every = interval_seconds(PERIODIC[name].interval_ms(settings))
        run = runs.get(name)
        if run is None:
            lines.append(f"  {name}  every {every} s  never ran")
            continue
        detail = f"last run {_when(run.started_at, now)} {run.status}"
        if run.status == JobRunStatus.SUCCEEDED and run.units_sent is not None:
            detail += f" ({run.units_sent} units sent)"
        if run.status == JobRunStatus.FAILED:
            detail += f": {run.error_type}: {(run.error or '').splitlines()[0][:200] if run.error else ''}"
            detail += f"; last success {_when(run.last_success_at, now)}"
        lines.append(f"  {name}  every {every} s  {detail}")
    return "\n".join(lines)


async def _send_failed_again(limit: int | None) -> list[JobUnitRun]:
    """Send every failed unit (oldest first, at most `limit`) through the broker again; the units sent.
    Units are idempotent (docs/architecture.md), so sending one that meanwhile succeeded does nothing."""
    broker = get_broker()
    sent = []
    for unit in await ledger.units(JobRunStatus.FAILED, limit or 2**31):
        task = broker.find_task(unit.task_name)
        if task is None:  # a task of an older version: nothing can run it any more
            continue
        arguments = unit.args or {}
        await task.kiq(*arguments.get("args", []), **arguments.get("kwargs", {}))
        sent.append(unit)
    return sent


async def retry_failed(limit: int | None) -> tuple[str, bool]:
    """Send the failed units again; (report, every unit that ran here succeeded). With Redis the workers run
    them; without, they run in this process, and the report says how each went."""
    sent = await _send_failed_again(limit)
    if not sent:
        return "no failed units", True
    lines = [f"sent {len(sent)} failed unit(s) again:"]
    lines += [f"  {unit.task_name}  {_unit_arguments(unit)}" for unit in sent]
    broker = get_broker()
    if not is_in_process(broker):
        lines.append("the workers run them; `decabill jobs` shows how they went")
        return "\n".join(lines), True
    await broker.wait_all()  # type: ignore[attr-defined]  # in-process: they ran in this process
    failed_again = [unit for unit in sent if await ledger.status_of(unit.task_name, unit.args_key) == JobRunStatus.FAILED]
    lines.append(f"ran here: {len(sent) - len(failed_again)} succeeded, {len(failed_again)} failed again")
    return "\n".join(lines), not failed_again
