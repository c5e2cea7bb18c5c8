"""Redis clients for the parts that use Redis directly (not through the job layer): one client per event loop
and URL, because a client's connection pool belongs to the loop that opened it (the CLI and the tests run
several loops in one process)."""

from __future__ import annotations

import asyncio
from typing import Any

_clients: dict[tuple[asyncio.AbstractEventLoop, str], Any] = {}


def client_for(url: str) -> Any:
    """The running loop's client for `url` (short socket timeouts: every caller has a fallback)."""
    import redis.asyncio as redis

    global _clients
    loop = asyncio.get_running_loop()
    client = _clients.get((loop, url))
    if client is None:
        _clients = {known: c for known, c in _clients.items() if not known[0].is_closed()}
        client = _clients[(loop, url)] = redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    return client
