"""One ASGI middleware for what every request needs before routing: a request id, the tenant,
the origin allowlist and rate limiting (behavior.md part A §1.2, §1.3, §3.1). It answers its own
refusals with the contract's ErrorResponse body."""

from __future__ import annotations

import json
import time
import uuid

import structlog
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from decabill.config import Settings
from decabill.errors import DecabillError, error_body
from decabill.tenancy import reset_tenant, resolve_tenant, set_tenant
from decabill.web.routes import allow_header, allowed_methods, is_concrete

log = structlog.get_logger("decabill.http")

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Credential endpoints get their own, much smaller budget (password guessing, mail bombing).
CREDENTIAL_PATHS = {
    "/api/auth/login",
    "/api/auth/register",
    "/api/auth/confirm-email",
    "/api/auth/request-password-reset",
    "/api/auth/reset-password",
    "/api/auth/change-password",
}


class RateLimiter:
    def __init__(self, settings: Settings):
        self.enabled = settings.rate_limit_enabled
        storage: Storage
        if settings.redis_url:
            # redis-py (a dependency already): limits' default async client, coredis, is not installed
            storage = RedisStorage(
                "async+" + settings.redis_url, key_prefix=f"{settings.redis_key_prefix}:ratelimit",
                implementation="redispy",
            )
        else:
            storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(storage)
        self._general = RateLimitItemPerSecond(settings.rate_limit_limit, settings.rate_limit_ttl)
        self._credentials = RateLimitItemPerSecond(settings.rate_limit_auth_limit, settings.rate_limit_ttl)

    async def allow(self, client_ip: str, path: str) -> bool:
        if not self.enabled:
            return True
        if not await self._limiter.hit(self._general, "all", client_ip):
            return False
        if path in CREDENTIAL_PATHS:
            return await self._limiter.hit(self._credentials, "credentials", client_ip)
        return True


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.settings = settings
        self.rate_limiter = RateLimiter(settings)
        self.allowed_origins = {o.lower() for o in settings.cors_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = headers.get("x-correlation-id") or headers.get("x-request-id") or str(uuid.uuid4())
        request_id = request_id[:128]
        method, path = scope["method"], scope["path"]
        structlog.contextvars.bind_contextvars(request_id=request_id, method=method, path=path)
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                MutableHeaders(scope=message)["X-Correlation-Id"] = request_id
            await send(message)

        tenant_token = None
        try:
            refusal = self._refusal(method, path, headers)
            if refusal is None:
                tenant_token = set_tenant(resolve_tenant(headers.get("x-tenant"), self.settings.tenants))
                client_ip = (scope.get("client") or ("unknown", 0))[0]
                if not await self.rate_limiter.allow(client_ip, path):
                    refusal = (429, "Too many requests, please try again later.", {})
            if refusal is not None:
                await _send_error(send_with_id, *refusal)
            else:
                await self.app(scope, receive, send_with_id)
        except DecabillError as exc:  # invalid tenant
            await _send_error(send_with_id, exc.status_code, exc.message, {})
        finally:
            if tenant_token is not None:
                reset_tenant(tenant_token)
            log.info(
                "request",
                status=status_holder["status"],
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            structlog.contextvars.clear_contextvars()

    def _refusal(self, method: str, path: str, headers: Headers) -> tuple[int, str, dict] | None:
        if is_concrete(path) and method not in ("OPTIONS", "HEAD"):
            methods = allowed_methods(path) or frozenset()
            if method not in methods:
                return 405, "Method Not Allowed", {"Allow": allow_header(methods)}
        origin = headers.get("origin")
        if method in UNSAFE_METHODS and origin and self.settings.origin_allowlist_enforced:
            if "*" not in self.allowed_origins and origin.strip().lower() not in self.allowed_origins:
                return 403, "Origin not allowed", {}
        return None


async def _send_error(send: Send, status: int, message: str, headers: dict[str, str]) -> None:
    body = json.dumps(error_body(status, message)).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
