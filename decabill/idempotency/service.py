"""Idempotent writes (Stripe's convention): a client sends `Idempotency-Key: <unique value>` with a write and
may retry it safely.

* the first request with a key claims it: a row (tenant, caller, key) in state `in_progress` with the hash of
  the request, committed at once so every process sees it (a unique key decides between concurrent firsts);
* when the work answers, its response (status and body) is stored on the row for IDEMPOTENCY_KEY_TTL_HOURS;
* a repeat with the same request gets the stored response and nothing is done again; with a different
  request → 422; while the first is still running → 409;
* a request that fails (a domain error, a crash) releases its claim, so the client may retry with the same
  key; a claim left by a process that died is taken over after IDEMPOTENCY_STALE_SECONDS;
* with Redis (REDIS_URL), repeats of a completed write are answered from Redis (`fast_path`).

The caller is the user (or the static API key): one user's key never answers another's request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from decabill import db
from decabill.config import get_settings
from decabill.idempotency import fast_path
from decabill.idempotency.errors import IdempotencyKeyInvalid, IdempotencyKeyReused, IdempotentRequestInProgress
from decabill.idempotency.repository import IdempotencyKeyRepository
from decabill.identity.principal import Principal
from models.idempotency import IdempotencyKey, IdempotencyState

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255

Response = tuple[Any, int]


def request_hash(operation: str, arguments: dict[str, Any]) -> str:
    """What makes two requests "the same": the operation and every argument the handler receives (path and
    query parameters, the parsed JSON body) — so whitespace or key order in the body does not matter."""
    canonical = json.dumps({"operation": operation, "arguments": arguments}, sort_keys=True, default=str,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def caller_of(principal: Principal) -> str:
    return str(principal.user_id) if principal.user_id is not None else principal.method


def _check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH or not all(32 <= ord(c) < 127 for c in key):
        raise IdempotencyKeyInvalid()


@dataclass(frozen=True)
class _Claim:
    row: IdempotencyKey | None  # ours to run (None: a stored response answers)
    stored: Response | None = None


async def _claim(caller: str, key: str, operation: str, fingerprint: str) -> _Claim:
    settings = get_settings()
    async with db.transaction() as session:
        keys = IdempotencyKeyRepository(session)
        now = db.utcnow()
        fresh = {"caller": caller, "key": key, "operation": operation, "request_hash": fingerprint,
                 "state": IdempotencyState.IN_PROGRESS, "response_status": None, "response_body": None,
                 "locked_at": now, "expires_at": now + dt.timedelta(hours=settings.idempotency_key_ttl_hours)}
        if await keys.insert_claim({"id": uuid.uuid4(), "created_at": now, **fresh}) is not None:
            return _Claim(await keys.of(caller, key))
        row = await keys.of(caller, key)
        if row is None:  # released between the insert and the read: the client may simply retry
            raise IdempotentRequestInProgress()
        abandoned = (row.state == IdempotencyState.IN_PROGRESS
                     and row.locked_at <= now - dt.timedelta(seconds=settings.idempotency_stale_seconds))
        if row.expires_at <= now or abandoned:
            for name, value in fresh.items():  # the old use is over: this request starts a new one
                setattr(row, name, value)
            row.created_at = now
            await session.flush()
            return _Claim(row)
        if row.request_hash != fingerprint:
            raise IdempotencyKeyReused()
        if row.state == IdempotencyState.IN_PROGRESS:
            raise IdempotentRequestInProgress()
        return _Claim(None, (row.response_body, row.response_status or 200))


async def _complete(row: IdempotencyKey, response: Response) -> bool:
    """Store the response on our claim; False when the claim was taken over meanwhile (nothing stored)."""
    body, status = response
    async with db.transaction() as session:
        stored = await IdempotencyKeyRepository(session).get(row.id, for_update=True, reload=True)
        if stored is None or stored.locked_at != row.locked_at:
            return False
        stored.state = IdempotencyState.COMPLETED
        stored.response_status = status
        stored.response_body = body
        return True


async def _release(row: IdempotencyKey) -> None:
    async with db.transaction() as session:
        await IdempotencyKeyRepository(session).release(row.id, row.locked_at)


async def run_once(principal: Principal, key: str, operation: str, fingerprint: str,
                   work: Callable[[], Awaitable[Response]]) -> Response:
    """Run `work` (a handler answering `(body, status)`) at most once per key; see the module's rules."""
    _check_key(key)
    caller = caller_of(principal)
    remembered = await fast_path.recall(caller, key)
    if remembered is not None:
        if remembered.fingerprint != fingerprint:
            raise IdempotencyKeyReused()
        return remembered.response
    claim = await _claim(caller, key, operation, fingerprint)
    if claim.row is None:
        assert claim.stored is not None
        return claim.stored
    try:
        response = await work()
    except BaseException:
        await _release(claim.row)
        raise
    if await _complete(claim.row, response):
        await fast_path.remember(caller, key, fingerprint, response, claim.row.expires_at)
    return response


async def delete_expired() -> int:
    """Forget the keys whose time is up (a periodic job, per tenant)."""
    async with db.transaction() as session:
        return await IdempotencyKeyRepository(session).delete_expired(db.utcnow())
