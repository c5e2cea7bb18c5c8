"""Jobs, observed: a taskiq middleware on the broker of every process (decabill/jobs/queue.py).

Per execution of a unit or a coordinator: `decabill_job_runs_total{job, outcome}` (`succeeded` /
`failed`), `decabill_job_duration_seconds{job}`, `decabill_job_retries_total{job}` when the ledger knew the
unit already (its previous run failed or was interrupted), a span `job <name>` continuing the trace of
whoever enqueued it (the W3C trace context travels in the message labels), and the job ledger
(`decabill.jobs.ledger`). Bookkeeping that fails is logged and never fails the job.

`queue_slot(...)` wraps the in-process broker's concurrency slot, so that without Redis the units waiting
for a slot are the queue (`in_process_queue()`); with Redis the stream says it (`decabill.jobs.inspect`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult

from decabill.jobs import ledger
from decabill.observability import metrics, tracing

log = structlog.get_logger("decabill.jobs")


@dataclass
class _Run:
    started: float
    span: Any
    token: object


class JobObserver(TaskiqMiddleware):
    def __init__(self, is_periodic: Callable[[str], bool]) -> None:
        super().__init__()
        self._is_periodic = is_periodic
        self._runs: dict[str, _Run] = {}

    def set_broker(self, broker: Any) -> None:
        super().set_broker(broker)
        # Every task's series from the start, at 0: `increase()` over a series that appears late misses its first step.
        for name in broker.get_all_tasks():
            metrics.JOB_RETRIES.labels(name)
            for outcome in ("succeeded", "failed"):
                metrics.JOB_RUNS.labels(name, outcome)

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        tracing.inject_context(message.labels)
        return message

    async def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        name = message.task_name
        current, token = tracing.start_detached_span(
            f"job {name}", message.labels, {"decabill.job": name, "decabill.job_id": message.task_id})
        self._runs[message.task_id] = _Run(time.perf_counter(), current, token)
        try:
            if self._is_periodic(name):
                await ledger.periodic_started(name)
            elif await ledger.unit_started(name, message.args, message.kwargs):
                metrics.JOB_RETRIES.labels(name).inc()
        except Exception as exc:  # noqa: BLE001 - bookkeeping must not stop the job
            log.warning("jobs.ledger_failed", task=name, stage="start", error=str(exc), error_type=type(exc).__name__)
        return message

    async def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        name = message.task_name
        run = self._runs.pop(message.task_id, None)
        error = result.error if result.is_err and isinstance(result.error, BaseException) else None
        if result.is_err and error is None:
            error = RuntimeError("the job failed")
        metrics.JOB_RUNS.labels(name, "failed" if error is not None else "succeeded").inc()
        if run is not None:
            metrics.JOB_DURATION.labels(name).observe(time.perf_counter() - run.started)
        try:
            if self._is_periodic(name):
                await ledger.periodic_finished(name, error, None if error else result.return_value)
            else:
                await ledger.unit_finished(name, message.args, message.kwargs, error)
        except Exception as exc:  # noqa: BLE001 - bookkeeping must not stop the job
            log.warning("jobs.ledger_failed", task=name, stage="finish", error=str(exc), error_type=type(exc).__name__)
        if run is not None:
            tracing.end_detached_span(run.span, run.token, error)


# --- the in-process queue ---------------------------------------------------------------------------------

_waiting: dict[int, float] = {}  # id of a waiting unit's marker -> when it began to wait (time.time())
_running = 0


@asynccontextmanager
async def queue_slot(slot: AbstractAsyncContextManager[Any]) -> AsyncIterator[None]:
    """`async with slot` that counts the unit as waiting until it has the slot, then as running."""
    global _running
    marker = object()
    _waiting[id(marker)] = time.time()
    try:
        async with slot:
            _waiting.pop(id(marker), None)
            _running += 1
            try:
                yield
            finally:
                _running -= 1
    finally:
        _waiting.pop(id(marker), None)


def in_process_queue() -> tuple[int, int, float]:
    """(units waiting for a slot, units running, age in seconds of the oldest waiting one or 0)."""
    oldest = min(_waiting.values(), default=None)
    return len(_waiting), _running, (time.time() - oldest) if oldest is not None else 0.0
