"""Server changes that dashboards show at once: published by the services that make them, pushed by the
socket gateway to every watcher of the server without waiting for its next poll.

    changes.server_changed(user_id, subscription_id, item_id, "stopped")

Inside a transaction the change is published once it commits (`db.after_commit`), outside at once. It
reaches the listeners of this process (`listen()`: the gateway when it runs in the same process) and, with
REDIS_URL, every other process through the channel `<REDIS_KEY_PREFIX>:dashboard:changes` (a JSON
`ServerChange` plus the publishing process's `origin`, so a process skips its own messages).

Kinds in use: `started`, `stopped`, `restarted`, `provisioned`, `canceled`, `resumed`, `ended`; `suspended` and
`unsuspended` are reserved for dunning (suspension calls `server_changed(..., "suspended")` per item). A
failure to publish is logged, never raised: the next poll shows the change anyway.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from decabill import db
from decabill.config import get_settings
from decabill.tenancy import current_tenant

log = structlog.get_logger(__name__)

ORIGIN = uuid.uuid4().hex  # this process


@dataclass(frozen=True)
class ServerChange:
    tenant: str
    user_id: str | None  # None: the owner of the subscription (the gateway looks it up)
    subscription_id: str
    item_id: str | None  # None: the whole subscription (every item of it)
    kind: str
    at: float  # wall-clock seconds when it was made: readings taken before it are stale

    def to_json(self) -> str:
        return json.dumps({**dataclasses.asdict(self), "origin": ORIGIN})

    @classmethod
    def from_json(cls, raw: str | bytes) -> tuple["ServerChange", str]:
        data = json.loads(raw)
        origin = str(data.pop("origin", ""))
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)}), origin


Listener = Callable[[ServerChange], Awaitable[None] | None]
_listeners: list[Listener] = []
_pending: set[asyncio.Future] = set()  # publications started outside a transaction (kept referenced)


def channel(prefix: str) -> str:
    return f"{prefix}:dashboard:changes"


def listen(listener: Listener) -> Callable[[], None]:
    """Call `listener` for every change published in this process; returns the function that stops it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener) if listener in _listeners else None


def server_changed(user_id: uuid.UUID | None, subscription_id: uuid.UUID, item_id: uuid.UUID | None, kind: str) -> None:
    """Publish a change of the bound tenant (after the current transaction commits, if there is one). Never
    raises: a dashboard that misses a push shows the change at its next poll."""
    try:
        _schedule(user_id, subscription_id, item_id, kind)
    except Exception:
        log.exception("changes.not_published", kind=kind)


def _schedule(user_id: uuid.UUID | None, subscription_id: uuid.UUID, item_id: uuid.UUID | None, kind: str) -> None:
    change = ServerChange(current_tenant(), None if user_id is None else str(user_id), str(subscription_id),
                          None if item_id is None else str(item_id), kind, time.time())

    async def publish() -> None:
        await _publish(change)

    if db.in_transaction():
        db.after_commit(publish)
    else:
        task = asyncio.ensure_future(publish())
        _pending.add(task)
        task.add_done_callback(_pending.discard)


async def _publish(change: ServerChange) -> None:
    for listener in list(_listeners):
        try:
            outcome = listener(change)
            if outcome is not None:
                await outcome
        except Exception:  # a listener's problem is its own
            log.exception("changes.listener_failed", kind=change.kind)
    settings = get_settings()
    if not settings.redis_url:
        return
    try:
        import redis.asyncio as aioredis

        # A connection per change: changes are rare (people pressing buttons), and no client outlives its loop.
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            await client.publish(channel(settings.redis_key_prefix), change.to_json())
        finally:
            await client.aclose()
    except Exception as exc:
        log.warning("changes.publish_failed", kind=change.kind, error=str(exc))
