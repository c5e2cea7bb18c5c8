"""How full the job queue is, for the metrics and `decabill jobs`.

* Redis (`RedisStreamBroker`): the stream `<REDIS_KEY_PREFIX>:jobs` read by the consumer group
  `<REDIS_KEY_PREFIX>:workers`. Acknowledged messages stay in the stream, so its length says nothing;
  the group does: `lag` = messages no worker has taken yet (waiting), `pending` = taken and not
  acknowledged (in flight: running, or held by a worker that died until another claims it). The oldest
  of those is the first pending entry or, without any, the first entry after the group's last delivered
  one; a stream id starts with its time in milliseconds, which gives the age.
* In-process (no Redis): the units waiting for a slot of this process (decabill/observability/jobs.py).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from decabill.config import Settings
from decabill.jobs.observer import in_process_queue

SAMPLE_LIMIT = 1000  # messages read to tell which tasks wait (`decabill jobs`); the counts are exact


@dataclass(frozen=True)
class QueueState:
    backend: str  # "redis" | "in-process"
    waiting: int
    in_flight: int
    oldest_age_seconds: float
    waiting_by_task: dict[str, int] = field(default_factory=dict)  # from at most SAMPLE_LIMIT messages


def _stream_names(settings: Settings) -> tuple[str, str]:
    prefix = settings.redis_key_prefix
    return f"{prefix}:jobs", f"{prefix}:workers"


def _id_millis(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def _task_name(fields: dict) -> str:
    import json

    raw = fields.get(b"data") or fields.get("data")
    try:
        return str(json.loads(raw)["task_name"])
    except (TypeError, ValueError, KeyError):
        return "unreadable"


async def redis_queue(settings: Settings, *, by_task: bool = False) -> QueueState:
    import redis.asyncio as redis
    from redis.exceptions import ResponseError

    stream, group = _stream_names(settings)
    client = redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        try:
            groups = await client.xinfo_groups(stream)
        except ResponseError:  # no stream yet: nothing was ever enqueued
            return QueueState("redis", 0, 0, 0.0)
        info = next((g for g in groups if (g.get("name") or b"").decode() == group), None) if groups else None
        after = (info or {}).get("last-delivered-id") or b"0-0"
        if info is not None and info.get("lag") is not None:
            waiting = int(info["lag"])
        else:  # no group yet (no worker ever started), or a Redis before 7: count what follows the cursor
            waiting = len(await client.xrange(stream, min=b"(" + after, count=10**6))
        in_flight = int((info or {}).get("pending") or 0)
        oldest_ids = []
        if in_flight:
            summary = await client.xpending(stream, group)
            if summary.get("min"):
                oldest_ids.append(summary["min"])
        sample = await client.xrange(stream, min=b"(" + after, count=SAMPLE_LIMIT if by_task else 1) if waiting else []
        if sample:
            oldest_ids.append(sample[0][0])
        now_ms = int(time.time() * 1000)
        age = max(0, now_ms - min(_id_millis(i) for i in oldest_ids)) / 1000 if oldest_ids else 0.0
        tasks = dict(Counter(_task_name(fields) for _id, fields in sample)) if by_task else {}
        return QueueState("redis", waiting, in_flight, age, tasks)
    finally:
        await client.aclose()


async def queue_state(settings: Settings, *, by_task: bool = False) -> QueueState:
    if settings.redis_url:
        return await redis_queue(settings, by_task=by_task)
    waiting, running, age = in_process_queue()
    return QueueState("in-process", waiting, running, age)
