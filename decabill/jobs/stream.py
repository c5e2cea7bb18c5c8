"""The Redis job stream: taskiq-redis' stream broker with the three things a crash-safe deployment needs.

* **Take-over.** A message a worker read but never acknowledged (the worker died) is claimed by another
  worker once it has been idle for QUEUE_CLAIM_IDLE_MS (XAUTOCLAIM, on every round of reading, also when
  no new message arrives — taskiq-redis only looks after a read that returned something).
* **Lease renewal.** A live worker renews every message it holds (read, queued for a slot or running) every
  third of that time (XCLAIM of its own ids with JUSTID, which resets their idle time), so a long job is
  never taken from a worker that is still running it.
* **Trimming.** Every QUEUE_CLAIM_IDLE_MS (and when a worker starts) the stream is trimmed (XTRIM MINID) to the oldest entry that is
  still pending (read, not acknowledged) or not delivered yet: what lies before it was acknowledged. A
  length cap (MAXLEN) would delete unacknowledged work, so there is none.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from taskiq import AckableMessage
from taskiq_redis import RedisStreamBroker

log = structlog.get_logger("decabill.jobs")

def _entry_id(value: bytes | str) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else value
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


def trim_threshold(last_delivered: bytes | str | None, oldest_pending: bytes | str | None) -> str | None:
    """The MINID to trim to: entries below it were delivered and acknowledged. None: nothing may go."""
    candidates = [_entry_id(v) for v in (last_delivered, oldest_pending) if v not in (None, b"0-0", "0-0")]
    if not candidates:
        return None
    milliseconds, sequence = min(candidates)
    return f"{milliseconds}-{sequence}"


class JobStreamBroker(RedisStreamBroker):
    def __init__(self, url: str, *, claim_idle_ms: int, **kwargs) -> None:
        super().__init__(url, idle_timeout=claim_idle_ms, **kwargs)
        self._held: set[bytes] = set()
        self._keeper: asyncio.Task | None = None

    # --- reading ---------------------------------------------------------------------------------------

    def _hold(self, message_id: bytes, stream: bytes | str) -> Callable[[], Awaitable[None]]:
        acknowledge = self._ack_generator(id=message_id, queue_name=stream)  # type: ignore[arg-type]
        self._held.add(message_id)

        async def ack() -> None:
            await acknowledge()
            self._held.discard(message_id)

        return ack

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        self._start_keeper()
        async with Redis(connection_pool=self.connection_pool) as redis:
            while True:
                # first what dead workers left behind, then new messages (blocking up to xread_block)
                _next, claimed, *_deleted = await redis.xautoclaim(
                    self.queue_name, self.consumer_group_name, self.consumer_name,
                    min_idle_time=self.idle_timeout, start_id="0-0", count=self.unacknowledged_batch_size)
                if claimed:
                    log.warning("jobs.messages_taken_over", count=len(claimed), idle_ms=self.idle_timeout)
                for message_id, fields in claimed:
                    if fields:  # an entry trimmed away meanwhile has no fields (cannot happen with MINID trimming)
                        yield AckableMessage(data=fields[b"data"], ack=self._hold(message_id, self.queue_name))
                fetched = await redis.xreadgroup(self.consumer_group_name, self.consumer_name, {self.queue_name: ">"},
                                                 block=self.block, noack=False, count=self.count)
                for stream, messages in fetched or []:
                    for message_id, fields in messages:
                        yield AckableMessage(data=fields[b"data"], ack=self._hold(message_id, stream))

    # --- renewing and trimming -------------------------------------------------------------------------

    def _start_keeper(self) -> None:
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep(), name="decabill-job-stream-keeper")

    async def _keep(self) -> None:
        rounds = 0
        while True:
            try:
                await self.renew()
                if rounds % 3 == 0:  # at start-up, then every idle timeout
                    await self.trim()
            except RedisError as exc:  # Redis away for a moment: the next round tries again
                log.warning("jobs.stream_upkeep_failed", error=str(exc))
            await asyncio.sleep(self.idle_timeout / 3000)
            rounds += 1

    async def renew(self) -> None:
        """Reset the idle time of every message this worker holds, so no other worker takes it over."""
        held = list(self._held)
        if not held:
            return
        async with Redis(connection_pool=self.connection_pool) as redis:
            await redis.xclaim(self.queue_name, self.consumer_group_name, self.consumer_name, min_idle_time=0,
                               message_ids=held, justid=True)

    async def trim(self) -> int:
        """Drop the acknowledged entries at the head of the stream; returns how many went."""
        async with Redis(connection_pool=self.connection_pool) as redis:
            try:
                groups = await redis.xinfo_groups(self.queue_name)
            except ResponseError:  # no stream yet
                return 0
            group = next((g for g in groups if _name(g["name"]) == self.consumer_group_name), None)
            if group is None:
                return 0
            pending = await redis.xpending(self.queue_name, self.consumer_group_name)
            threshold = trim_threshold(group["last-delivered-id"], pending["min"] if pending["pending"] else None)
            if threshold is None:
                return 0
            removed = await redis.xtrim(self.queue_name, minid=threshold, approximate=False)
        if removed:
            log.info("jobs.stream_trimmed", removed=removed)
        return removed

    async def shutdown(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        await super().shutdown()


def _name(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
