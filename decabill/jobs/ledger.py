"""The job ledger: what an operator needs to know about background work, kept in the database so every
process (and `decabill jobs`) sees the same.

* A unit (task name + arguments) gets a `JobUnitRun` row while it runs; when it succeeds the row is
  deleted, when it fails the row stays `failed` with the error and the number of failed runs in a row.
  A unit that starts while its row exists repeats a failed (or interrupted) run: a retry. So the table
  holds only running and failed units — bounded by the work in flight and the work that keeps failing.
* A periodic coordinator has one `PeriodicJobRun` row: when it last started, finished and succeeded.

Written by the taskiq middleware (`decabill.jobs.observer`) in short transactions of their own;
across tenants (`InstallationRepository`): this is the operator's view of the whole installation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
from dataclasses import dataclass
from typing import Any

from decabill import db
from decabill.jobs.repository import JobUnitRunRepository, PeriodicJobRunRepository
from models.jobs import JobRunStatus, JobUnitRun, PeriodicJobRun

MAX_ERROR_LENGTH = 2000


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def _arguments(args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"args": list(args), "kwargs": dict(kwargs)}


def _key(arguments: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(arguments, sort_keys=True, default=str).encode()).hexdigest()


def _error_text(error: BaseException) -> str:
    return (str(error) or type(error).__name__)[:MAX_ERROR_LENGTH]


# --- units ---------------------------------------------------------------------------------------------


async def unit_started(task_name: str, args: list[Any], kwargs: dict[str, Any]) -> bool:
    """Record that the unit runs now; True when it is a retry (its row was there: failed or interrupted)."""
    arguments = _arguments(args, kwargs)
    key, now = _key(arguments), db.utcnow()
    tenant = args[0] if args and isinstance(args[0], str) else None
    async with db.transaction() as session:
        row, inserted = await JobUnitRunRepository(session).claim(task_name[:200], key, {
            "args": arguments, "tenant_id": tenant, "status": JobRunStatus.RUNNING, "attempts": 0,
            "worker": worker_name(), "started_at": now})
        if inserted:
            return False
        row.status, row.worker, row.started_at, row.finished_at = JobRunStatus.RUNNING, worker_name(), now, None
        return True


async def running_since(task_names: list[str], since: dt.datetime) -> bool:
    """Whether a unit of one of `task_names` started at or after `since` is running now, in any process.
    A unit recorded running by a process of this host that no longer exists does not count: it was killed, and
    nothing will mark it finished (without this, a restart after a crash waited for `since` to pass it by)."""
    async with db.transaction() as session:
        workers = await JobUnitRunRepository(session).workers_running_since(task_names, since)
    return any(_may_be_alive(worker) for worker in workers)


def _may_be_alive(worker: str | None) -> bool:
    """False only for a process of this host that is gone. Another host's process (or one in another PID
    namespace that shares the hostname) cannot be checked from here: only the unit's age tells."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


async def unit_finished(task_name: str, args: list[Any], kwargs: dict[str, Any], error: BaseException | None) -> None:
    """Forget a unit that succeeded; keep one that failed, with its error."""
    arguments = _arguments(args, kwargs)
    key, now = _key(arguments), db.utcnow()
    async with db.transaction() as session:
        runs = JobUnitRunRepository(session)
        if error is None:
            await runs.forget(task_name[:200], key)
            return
        row, _inserted = await runs.claim(task_name[:200], key, {
            "args": arguments, "tenant_id": args[0] if args and isinstance(args[0], str) else None,
            "status": JobRunStatus.RUNNING, "attempts": 0, "worker": worker_name(), "started_at": now})
        row.status, row.attempts, row.finished_at = JobRunStatus.FAILED, row.attempts + 1, now
        row.error_type, row.error = type(error).__name__[:200], _error_text(error)


# --- periodic coordinators ------------------------------------------------------------------------------


async def periodic_started(task_name: str) -> None:
    now = db.utcnow()
    async with db.transaction() as session:
        row = await PeriodicJobRunRepository(session).claim(task_name, {
            "status": JobRunStatus.RUNNING, "worker": worker_name(), "started_at": now})
        row.status, row.worker, row.started_at, row.finished_at = JobRunStatus.RUNNING, worker_name(), now, None


async def periodic_finished(task_name: str, error: BaseException | None, units_sent: Any = None) -> None:
    now = db.utcnow()
    async with db.transaction() as session:
        row = await PeriodicJobRunRepository(session).of(task_name, for_update=True)
        if row is None:
            return
        row.finished_at = now
        if error is None:
            row.status, row.last_success_at, row.error_type, row.error = JobRunStatus.SUCCEEDED, now, None, None
            row.units_sent = units_sent if isinstance(units_sent, int) and not isinstance(units_sent, bool) else None
        else:
            row.status, row.error_type, row.error = JobRunStatus.FAILED, type(error).__name__[:200], _error_text(error)


# --- reading -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitCount:
    task_name: str
    status: str
    count: int
    oldest: dt.datetime


async def unit_counts() -> list[UnitCount]:
    async with db.transaction() as session:
        return [UnitCount(*row) for row in await JobUnitRunRepository(session).counts()]


async def units(status: str, limit: int = 50) -> list[JobUnitRun]:
    async with db.transaction() as session:
        return await JobUnitRunRepository(session).with_status(status, limit)


async def periodic_runs() -> list[PeriodicJobRun]:
    async with db.transaction() as session:
        return await PeriodicJobRunRepository(session).by_name()


async def status_of(task_name: str, args_key: str) -> str | None:
    """The unit's status in the ledger; None when it has no row (it succeeded, or never ran)."""
    async with db.transaction() as session:
        return await JobUnitRunRepository(session).status_of(task_name, args_key)


async def failed_units_of(task_name: str) -> int:
    async with db.transaction() as session:
        return await JobUnitRunRepository(session).failed_count(task_name)
