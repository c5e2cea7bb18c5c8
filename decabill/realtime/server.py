"""The Socket.IO listener (WEBSOCKET_PORT, namespace WEBSOCKET_NAMESPACE).

Handshake authentication works exactly like HTTP: the same `authenticate()` with the same tenant
rules. Several processes share one namespace through Redis when REDIS_URL is set.
"""

from __future__ import annotations

import socketio
import structlog

from decabill.config import Settings
from decabill.errors import DecabillError
from decabill.identity.auth import Principal, authenticate
from decabill.tenancy import bound_tenant, resolve_tenant

log = structlog.get_logger(__name__)


def _cors(settings: Settings) -> str | list[str]:
    origins = [o.strip() for o in settings.websocket_cors_origin.split(",") if o.strip()]
    return "*" if not origins or "*" in origins else origins


async def authenticate_handshake(settings: Settings, environ: dict, auth: dict | None) -> Principal:
    """Tenant from `X-Tenant` or `auth.tenantId`; credentials from `Authorization` or `auth.Authorization`."""
    auth = auth if isinstance(auth, dict) else {}
    try:
        tenant = resolve_tenant(environ.get("HTTP_X_TENANT") or auth.get("tenantId"), settings.tenants)
    except DecabillError:
        raise socketio.exceptions.ConnectionRefusedError("Invalid tenant") from None
    credentials = environ.get("HTTP_AUTHORIZATION") or auth.get("Authorization") or auth.get("authorization")
    with bound_tenant(tenant):
        try:
            return await authenticate(credentials if isinstance(credentials, str) else None)
        except DecabillError:
            raise socketio.exceptions.ConnectionRefusedError("Unauthorized") from None


def create_socket_server(settings: Settings) -> socketio.AsyncServer:
    manager = socketio.AsyncRedisManager(settings.redis_url) if settings.redis_url else None
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=_cors(settings), client_manager=manager)
    namespace = "/" + settings.websocket_namespace

    @sio.on("connect", namespace=namespace)
    async def connect(sid, environ, auth=None):
        principal = await authenticate_handshake(settings, environ, auth)
        await sio.save_session(sid, {"principal": principal}, namespace=namespace)
        log.info("socket.connected", sid=sid, tenant=principal.tenant, method=principal.method)

    return sio


def create_socket_app(settings: Settings) -> socketio.ASGIApp:
    return socketio.ASGIApp(create_socket_server(settings))
