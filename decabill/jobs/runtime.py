"""What a `decabill` process runs of the job layer, by `QUEUE_ROLE` (behavior.md part B §2.7):

| role        | HTTP | sends coordinators on their interval (scheduler) | consumes jobs (worker) |
|-------------|------|---------------------------------------------------|------------------------|
| `api`       | yes  | no                                                | no (only enqueues)     |
| `scheduler` | no   | yes                                               | no                     |
| `worker`    | no   | no                                                | yes                    |
| `all`       | yes  | yes                                               | yes  (the default)     |

Without Redis the queue is in-process (`InMemoryBroker`): whatever a process enqueues runs in that same
process, so on the embedded default a single `decabill serve` (role `all`) is the whole system.

The scheduler is taskiq's own (`TaskiqScheduler` + `SchedulerLoop`) fed by a schedule source built from
the `@periodic` coordinators and their interval settings (milliseconds in the environment, rounded to
whole seconds, at least 1 s — the scheduler's resolution). Several scheduler processes may run:
coordinators only enqueue units, and units are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor

import structlog
from taskiq import ScheduleSource, TaskiqScheduler
from taskiq.api import run_scheduler_task
from taskiq.receiver import Receiver
from taskiq.scheduler.scheduled_task import ScheduledTask

from decabill.config import Settings
from decabill.jobs.queue import PERIODIC, enqueue, get_broker, is_in_process

log = structlog.get_logger("decabill.jobs")

SHUTDOWN_GRACE_SECONDS = 30.0


def interval_seconds(milliseconds: int) -> int:
    return max(1, round(milliseconds / 1000))


class CoordinatorSchedule(ScheduleSource):
    """Every `@periodic` coordinator on the interval its setting names."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def get_schedules(self) -> list[ScheduledTask]:
        return [
            ScheduledTask(task_name=p.task_name, labels={}, args=[], kwargs={}, schedule_id=f"coordinator.{p.task_name}",
                          interval=dt.timedelta(seconds=interval_seconds(p.interval_ms(self.settings))))
            for p in PERIODIC.values()
        ]


class JobRuntime:
    def __init__(self, settings: Settings, role: str | None = None) -> None:
        self.settings = settings
        self.role = role or settings.queue_role
        self._finish = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._scheduler: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def schedules(self) -> bool:
        return self.role in ("scheduler", "all")

    @property
    def consumes(self) -> bool:
        return self.role in ("worker", "all")

    async def start(self) -> None:
        # taskiq logs every send and every execution at INFO; ours are the unit's own log lines.
        for name in ("taskiq.cli.scheduler.run", "taskiq.receiver.receiver"):
            logging.getLogger(name).setLevel(logging.WARNING)
        broker = get_broker()
        in_process = is_in_process(broker)
        broker.is_worker_process = self.consumes
        await broker.startup()
        if self.consumes and not in_process:
            self._executor = ThreadPoolExecutor(max_workers=2)
            receiver = Receiver(broker, executor=self._executor, run_startup=False,
                                max_async_tasks=self.settings.queue_worker_concurrency, max_prefetch=1,
                                wait_tasks_timeout=SHUTDOWN_GRACE_SECONDS)
            self._worker = asyncio.create_task(receiver.listen(self._finish), name="decabill-worker")
        if self.schedules:
            scheduler = TaskiqScheduler(broker, sources=[CoordinatorSchedule(self.settings)])
            self._scheduler = asyncio.create_task(run_scheduler_task(scheduler), name="decabill-scheduler")
            for coordinator in PERIODIC.values():
                if coordinator.at_startup:  # e.g. the mails a crashed process left behind go out now
                    await enqueue(coordinator.task_name)
        log.info("jobs.started", role=self.role, broker=type(broker).__name__, scheduler=self.schedules,
                 worker=self.consumes, coordinators=sorted(PERIODIC))

    async def stop(self) -> None:
        """Stop sending coordinators, let running jobs finish (up to the grace period), close the broker."""
        broker = get_broker()
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._scheduler
        if self._worker is not None:
            self._finish.set()
            try:
                await asyncio.wait_for(self._worker, SHUTDOWN_GRACE_SECONDS + 5)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down anyway
                self._worker.cancel()
        if is_in_process(broker):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(broker.wait_all(), SHUTDOWN_GRACE_SECONDS)  # type: ignore[attr-defined]
        await broker.shutdown()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
        log.info("jobs.stopped", role=self.role)
