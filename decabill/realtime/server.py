"""The Socket.IO listener (WEBSOCKET_PORT, namespace WEBSOCKET_NAMESPACE).

`create_socket_server` builds the `AsyncServer` and registers the dashboard gateway on it through the
generated bindings (`register()` of `decabill/realtime/_generated.py`): payload validation, the
`error` event for bad input, and — with DECABILL_VALIDATE_RESPONSES (on in the tests) — validation of
every outbound payload against spec/asyncapi.yaml. Handshake authentication works exactly like HTTP
(`decabill.realtime.handlers.authenticate_handshake`). With REDIS_URL (or REDIS_HOST) set, several
processes serve one namespace through `AsyncRedisManager` on the channel `<REDIS_KEY_PREFIX>:socketio`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import socketio
import structlog

from decabill import collector
from decabill.config import Settings
from decabill.realtime.handlers import DashboardGateway, authenticate_handshake
from decabill.realtime.polling import Clock

__all__ = [
    "authenticate_handshake", "close_socket_server", "create_socket_app", "create_socket_server", "redis_channel",
]

log = structlog.get_logger(__name__)


def _cors(settings: Settings) -> str | list[str]:
    origins = [o.strip() for o in settings.websocket_cors_origin.split(",") if o.strip()]
    return "*" if not origins or "*" in origins else origins


def redis_channel(settings: Settings) -> str:
    return f"{settings.redis_key_prefix}:socketio"


def create_socket_server(settings: Settings, *, clock: Clock | None = None) -> tuple[socketio.AsyncServer,
                                                                                      DashboardGateway]:
    manager = (socketio.AsyncRedisManager(settings.redis_url, channel=redis_channel(settings))
               if settings.redis_url else None)
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=_cors(settings), client_manager=manager)
    redis = None
    if settings.redis_url:  # readings and changes shared with the other gateway processes
        import redis.asyncio as aioredis

        redis = aioredis.Redis.from_url(settings.redis_url)
    return sio, DashboardGateway(sio, settings, clock=clock, redis=redis)


async def close_socket_server(sio: socketio.AsyncServer, gateway: DashboardGateway) -> None:
    """Stop the pollers, the Redis listener (if any) and the server's background tasks."""
    await gateway.close()
    listener = getattr(sio.manager, "thread", None)
    if isinstance(listener, asyncio.Task) and not listener.done():
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    for connection in (getattr(sio.manager, "pubsub", None), getattr(sio.manager, "redis", None)):
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.aclose()
    await sio.shutdown()


# The provider libraries run in worker threads, and the event loop takes the GIL back after every I/O wait: at the
# default switch interval (5 ms) a loop that thousands of sockets keep busy waited up to 5 ms for a worker each time.
SWITCH_INTERVAL_SECONDS = 0.001


def tune_process() -> None:
    """The socket process's interpreter settings: the switch interval above, the collector's (decabill/collector.py)."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    collector.tune_after_start_up()


def create_socket_app(settings: Settings) -> socketio.ASGIApp:
    tune_process()
    sio, gateway = create_socket_server(settings)

    async def shutdown() -> None:
        await close_socket_server(sio, gateway)
        log.info("socket.stopped")

    return socketio.ASGIApp(sio, on_shutdown=shutdown)
