"""The optional Redis fast path of idempotent writes (when REDIS_URL is set): a completed write's response is
also kept in Redis until the key expires, so a repeat is answered by one GET instead of a database
transaction. The database stays the source of truth — claims (the unique row that decides between concurrent
firsts, the 409 while running) live only there; a miss, or Redis unreachable (logged), falls through to it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import structlog

from decabill import db
from decabill.config import get_settings
from decabill.redis_clients import client_for
from decabill.tenancy import current_tenant

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Remembered:
    fingerprint: str
    response: tuple[Any, int]


def _redis_key(caller: str, key: str) -> str:
    # Hashed: Redis holds no user id or client-chosen key in clear.
    digest = hashlib.sha256(f"{current_tenant()}\0{caller}\0{key}".encode()).hexdigest()
    return f"{get_settings().redis_key_prefix}:idempotency:{digest}"


async def recall(caller: str, key: str) -> Remembered | None:
    """The stored response of a completed use of the key, if Redis has it (None without Redis)."""
    url = get_settings().redis_url
    if not url:
        return None
    try:
        raw = await client_for(url).get(_redis_key(caller, key))
    except Exception as exc:  # Redis is an accelerator here: the database answers instead
        log.warning("idempotency.redis_unavailable", error=f"{type(exc).__name__}: {exc}")
        return None
    if raw is None:
        return None
    try:
        entry = json.loads(raw)
        return Remembered(entry["fingerprint"], (entry["body"], entry["status"]))
    except (ValueError, TypeError, KeyError) as exc:  # not an entry we wrote: the database answers instead
        log.warning("idempotency.redis_entry_unreadable", error=f"{type(exc).__name__}: {exc}")
        return None


async def remember(caller: str, key: str, fingerprint: str, response: tuple[Any, int],
                   expires_at: dt.datetime) -> None:
    """Keep a completed response in Redis until the key's row expires (nothing without Redis)."""
    url = get_settings().redis_url
    ttl_ms = int((expires_at - db.utcnow()).total_seconds() * 1000)
    if not url or ttl_ms <= 0:
        return
    body, status = response
    entry = json.dumps({"fingerprint": fingerprint, "body": body, "status": status}, default=str)
    try:
        await client_for(url).set(_redis_key(caller, key), entry, px=ttl_ms)
    except Exception as exc:
        log.warning("idempotency.redis_unavailable", error=f"{type(exc).__name__}: {exc}")
