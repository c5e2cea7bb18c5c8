"""The job queue on taskiq: task registration, the broker of the current configuration, fan-out.

Tasks are *shared* taskiq tasks (`taskiq.async_shared_broker`): they are declared once at import time
and run on whichever broker the configuration selects —

* no `REDIS_URL`/`REDIS_HOST` (the embedded default): `taskiq.InMemoryBroker`; a kicked task runs as an
  asyncio task inside the same process, at most `QUEUE_WORKER_CONCURRENCY` at a time;
* Redis configured: `taskiq_redis.RedisStreamBroker` on the stream `<REDIS_KEY_PREFIX>:jobs`, consumed by
  the processes whose `QUEUE_ROLE` is `worker` or `all` (consumer group `<REDIS_KEY_PREFIX>:workers`;
  a message is acknowledged after its task ran, so a worker that dies mid-task leaves it to be taken over
  by another after QUEUE_CLAIM_IDLE_MS; the stream is trimmed to its unacknowledged work —
  decabill/jobs/stream.py).

Every message carries only a tenant id and entity ids — never configuration or secrets.

Names are `<domain>.<verb>`. A domain declares its units with `@task("subscriptions.expire")` and its
periodic coordinators with `@periodic("subscriptions.expire_due", interval=lambda s: s.expiration_scheduler_interval)`;
`decabill.jobs.runtime` sends each coordinator on its interval (scheduler role).
"""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from taskiq import AsyncBroker, InMemoryBroker
from taskiq.brokers.shared_broker import async_shared_broker

from decabill.config import Settings, get_settings
from decabill.jobs.observer import JobObserver, queue_slot
from decabill.tenancy import bound_tenant

log = structlog.get_logger("decabill.jobs")

#: modules declaring tasks; imported before a broker is built so every task is registered
TASK_MODULES = ["decabill.customers.tasks", "decabill.subscriptions.tasks", "decabill.invoicing.tasks",
                "decabill.admin.tasks", "decabill.payments.tasks", "decabill.webhooks.tasks", "decabill.idempotency.tasks",
                "decabill.dunning.tasks"]


@dataclass(frozen=True)
class Periodic:
    task_name: str
    interval_ms: Callable[[Settings], int]
    at_startup: bool = False  # also sent when a scheduler starts (reconciliation after a crash)


PERIODIC: dict[str, Periodic] = {}


def task(name: str) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
    """Declare a unit task. Arguments must be JSON values (tenant and entity ids as strings)."""
    return async_shared_broker.task(task_name=name)


def periodic(name: str, *, interval: Callable[[Settings], int],
             at_startup: bool = False) -> Callable[[Callable[[], Awaitable[Any]]], Any]:
    """Declare a coordinator: a task without arguments that the scheduler sends every `interval(settings)` ms
    (and once when it starts, with `at_startup`)."""

    def decorate(function: Callable[[], Awaitable[Any]]) -> Any:
        PERIODIC[name] = Periodic(name, interval, at_startup)
        return async_shared_broker.task(task_name=name)(function)

    return decorate


def load_tasks() -> None:
    for module in TASK_MODULES:
        importlib.import_module(module)


def build_broker(settings: Settings) -> AsyncBroker:
    broker = _new_broker(settings)
    broker.add_middlewares(JobObserver(is_periodic=lambda name: name in PERIODIC))  # metrics, spans, the ledger
    return broker


def _new_broker(settings: Settings) -> AsyncBroker:
    if settings.redis_url:
        from decabill.jobs.stream import JobStreamBroker

        prefix = settings.redis_key_prefix
        return JobStreamBroker(
            settings.redis_url,
            queue_name=f"{prefix}:jobs",
            consumer_group_name=f"{prefix}:workers",
            # A message whose worker died is handed to another worker after this long unacknowledged.
            claim_idle_ms=settings.queue_claim_idle_ms,
            # One message per read: a worker takes what it can start, not the next hundred — else the first
            # worker to read takes a whole billing day's batches and the others get only what comes after.
            xread_count=1,
        )
    return InMemoryBroker(max_async_tasks=settings.queue_worker_concurrency, propagate_exceptions=False)


_current: tuple[Settings, AsyncBroker] | None = None


def get_broker() -> AsyncBroker:
    """The broker of the current configuration (rebuilt when the settings object changes, e.g. in tests).
    Tasks kicked from any process go through it; consuming is `decabill.jobs.runtime`'s business."""
    global _current
    settings = get_settings()
    if _current is None or _current[0] is not settings:
        load_tasks()
        _current = (settings, build_broker(settings))
        async_shared_broker.default_broker(_current[1])
    return _current[1]


def reset_broker() -> None:
    global _current
    _current = None


def is_in_process(broker: AsyncBroker | None = None) -> bool:
    return isinstance(broker or get_broker(), InMemoryBroker)


async def enqueue(unit: Any, *args: Any, **kwargs: Any) -> None:
    """Send a task through the current broker: a task, or its name (`"admin.bill_now"`), which is how a service
    sends one without importing the tasks module that wraps the service (tasks import services, never back)."""
    broker = get_broker()
    if isinstance(unit, str):
        found = broker.find_task(unit)
        if found is None:
            raise LookupError(f"no task named {unit!r} (is its module in TASK_MODULES?)")
        unit = found
    await unit.kiq(*args, **kwargs)


async def fan_out(due: Callable[[int], Awaitable[list[uuid.UUID]]], unit: Any, batch_size: int) -> int:
    """A coordinator's body: for every configured tenant, ask `due(batch_size)` (run with that tenant
    bound) for the ids of the entities that need work and send one `unit(tenant, id)` per entity.
    Returns how many units were sent."""
    sent = 0
    for tenant in get_settings().tenants:
        with bound_tenant(tenant):
            entity_ids = await due(batch_size)
        for entity_id in entity_ids:
            await enqueue(unit, tenant, str(entity_id))
            sent += 1
    return sent


_slots: tuple[int, asyncio.Semaphore] | None = None


def _unit_slots() -> asyncio.Semaphore:
    """At most QUEUE_WORKER_CONCURRENCY units at a time in this process. A Redis worker's receiver limits
    what it takes from the stream; the in-process broker starts every kicked task at once, so without this
    a coordinator's batch of 100 units would queue on the database connection pool instead."""
    global _slots
    size = get_settings().queue_worker_concurrency
    if _slots is None or _slots[0] != size:
        _slots = (size, asyncio.Semaphore(size))
    return _slots[1]


async def run_unit(name: str, tenant: str, work: Callable[[], Awaitable[Any]]) -> Any:
    """Run a unit's service function with its tenant bound; failures are logged (by name and tenant, never
    with the entity's data) and re-raised so the queue records them."""
    async with queue_slot(_unit_slots()):  # waiting for the slot = the in-process queue
        with bound_tenant(tenant):
            try:
                return await work()
            except Exception as exc:
                log.error("jobs.unit_failed", task=name, tenant=tenant, error=str(exc), error_type=type(exc).__name__)
                raise
