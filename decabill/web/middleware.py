"""The ASGI middlewares for what every request needs before routing: a request id, the tenant, the origin
allowlist and rate limiting (behavior.md part A §1.2, §1.3, §3.1), and the bound on request bodies. They
answer their own refusals with the contract's ErrorResponse body."""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid

import structlog
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from decabill.config import Settings
from decabill.errors import DecabillError, PayloadTooLarge, error_body, retry_after_header
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

    async def retry_after(self, client_ip: str, path: str) -> float | None:
        """None when the request may pass, else the seconds until the exhausted budget has room again."""
        if not self.enabled:
            return None
        budgets = [(self._general, "all")]
        if path in CREDENTIAL_PATHS:
            budgets.append((self._credentials, "credentials"))
        for item, name in budgets:
            if not await self._limiter.hit(item, name, client_ip):
                stats = await self._limiter.get_window_stats(item, name, client_ip)
                return max(stats.reset_time - time.time(), 1)
        return None


class RequestIds:
    """Generated correlation ids: UUID strings (version 4, as documented and as clients parse them), unique without
    asking the OS for 16 random bytes per request (`uuid4` was ~1.4 % of an authenticated read). The first 80 bits
    are a random `uuid4` drawn once per process (again in a forked child), the last 48 a counter from a random
    start: unique within the process, and across processes as long as two random prefixes differ."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        seed = uuid.uuid4().hex
        self._prefix = f"{seed[:8]}-{seed[8:12]}-{seed[12:16]}-{seed[16:20]}-"
        self._next = itertools.count(int(seed[20:], 16)).__next__

    def __call__(self) -> str:
        return f"{self._prefix}{self._next() & 0xFFFFFFFFFFFF:012x}"


new_request_id = RequestIds()

# The request headers read before routing, found in one pass over the raw headers (the first of each, as
# Starlette's `Headers.get` gives).
_WANTED = frozenset((b"x-correlation-id", b"x-request-id", b"x-tenant", b"origin", b"content-length",
                     b"transfer-encoding"))


def _request_headers(scope: Scope) -> dict[bytes, bytes]:
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        name = name.lower()
        if name in _WANTED and name not in found:
            found[name] = value
    return found


class RequestContextMiddleware:
    """Everything a request goes through before Connexion's error mapper, in this order: its correlation id (echoed
    on every answer), the early refusals (405 for a concrete path, 403 origin, 400 tenant, 429 rate limit), then
    the bound on its body (413 / 400 Content-Length, `BodyLimit`), the request log line at its end. One ASGI
    layer for what were two (the request context and the body limit): one pass over the headers, one frame."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.settings = settings
        self.rate_limiter = RateLimiter(settings)
        self.allowed_origins = {o.lower() for o in settings.cors_origins}
        self.tenants = settings.tenants
        self.origin_allowlist_enforced = settings.origin_allowlist_enforced
        self.body_limit = BodyLimit(app, settings.max_request_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _request_headers(scope)
        given = headers.get(b"x-correlation-id") or headers.get(b"x-request-id")
        request_id = given.decode("latin-1")[:128] if given else new_request_id()
        request_id_header = request_id.encode("latin-1")
        method, path = scope["method"], scope["path"]
        # The peer's address; uvicorn replaces it by X-Forwarded-For only for TRUSTED_PROXIES.
        client_ip = (scope.get("client") or ("unknown", 0))[0]
        structlog.contextvars.bind_contextvars(request_id=request_id, method=method, path=path)
        started = time.perf_counter()
        status_holder = [500]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = status_holder[0] = message["status"]
                raw = message.get("headers")
                raw = message["headers"] = list(raw) if raw is not None else []
                retry_after = False
                for n in range(len(raw) - 1, -1, -1):  # X-Correlation-Id replaces one the response may carry
                    name = raw[n][0].lower()
                    if name == b"x-correlation-id":
                        del raw[n]
                    elif name == b"retry-after":
                        retry_after = True
                raw.append((b"x-correlation-id", request_id_header))
                if status == 429 and not retry_after:
                    # Every 429 says when to come back; a refusal that did not know says "one window".
                    raw.append((b"retry-after", retry_after_header(self.settings.rate_limit_ttl).encode("latin-1")))
            await send(message)

        tenant_token = None
        try:
            refusal = self._refusal(method, path, headers)
            if refusal is None:
                tenant = headers.get(b"x-tenant")
                tenant_token = set_tenant(resolve_tenant(tenant.decode("latin-1") if tenant else None, self.tenants))
                wait = await self.rate_limiter.retry_after(client_ip, path)
                if wait is not None:
                    refusal = (429, "Too many requests, please try again later.",
                               {"Retry-After": retry_after_header(wait)})
            if refusal is not None:
                await _send_error(send_with_id, *refusal)
            else:
                await self.body_limit(scope, receive, send_with_id, headers)
        except DecabillError as exc:  # invalid tenant
            await _send_error(send_with_id, exc.status_code, exc.message, exc.headers)
        finally:
            if tenant_token is not None:
                reset_tenant(tenant_token)
            log.info(
                "request",
                status=status_holder[0],
                client=client_ip,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            structlog.contextvars.clear_contextvars()

    def _refusal(self, method: str, path: str, headers: dict[bytes, bytes]) -> tuple[int, str, dict] | None:
        if is_concrete(path) and method not in ("OPTIONS", "HEAD"):
            methods = allowed_methods(path) or frozenset()
            if method not in methods:
                return 405, "Method Not Allowed", {"Allow": allow_header(methods)}
        if method in UNSAFE_METHODS and (origin := headers.get(b"origin")) and self.origin_allowlist_enforced:
            if "*" not in self.allowed_origins and origin.decode("latin-1").strip().lower() not in self.allowed_origins:
                return 403, "Origin not allowed", {}
        return None


class BodyLimit:
    """Refuses request bodies beyond MAX_REQUEST_BODY_BYTES with 413 while they are read, before anything
    parses them: at once when Content-Length announces more; for a chunked upload (no length) as soon as
    the bytes received exceed the limit. A chunked body within the limit is handed on with its length (the
    spec validator treats a body without Content-Length as missing). Nothing beyond the limit is ever
    buffered, so many concurrent oversize uploads cost no memory: the server discards the rest of the upload
    as it arrives. (The connection is not closed at once: a close with unread data sends a TCP reset, which
    makes the client lose the 413 it has not read yet.) Called by the request context for each request it
    lets through, inside it (its 413 carries the correlation id) and outside Connexion's error mapper, which
    answers the 413 raised while the validator reads an oversize chunked body."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]) -> None:
        declared = headers.get(b"content-length")
        if declared is not None:
            declared_text = declared.decode("latin-1")
            if not declared_text.strip().isdigit():
                await _send_error(send, 400, "Invalid Content-Length header", {})
            elif int(declared_text) > self.limit:
                await self._refuse(send)
            else:
                await self.app(scope, self._bounded(receive), send)
            return
        if b"transfer-encoding" not in headers:  # no body at all
            await self.app(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        scope = {**scope, "headers": [*scope["headers"], (b"content-length", str(size).encode())]}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _bounded(self, receive: Receive) -> Receive:
        """A second guard for bodies with a Content-Length (the server already holds them to it)."""
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise PayloadTooLarge(self.limit)
            return message

        return bounded_receive

    async def _refuse(self, send: Send) -> None:
        refusal = PayloadTooLarge(self.limit)
        await _send_error(send, refusal.status_code, refusal.message, refusal.headers)


async def _send_error(send: Send, status: int, message: str, headers: dict[str, str]) -> None:
    body = json.dumps(error_body(status, message)).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
