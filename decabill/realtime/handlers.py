"""The dashboard gateway: the hand-written behaviour behind the generated Socket.IO bindings
(`decabill/realtime/_generated.py`, from spec/asyncapi.yaml; behavior.md part B §8).

Each connected socket has one `_Socket` record in this process: its principal (from the handshake)
and at most one poller.

* `connect`: the handshake is authenticated exactly like HTTP (`authenticate_handshake`).
* `subscribeDashboardStatus`: any running poller of the socket stops; an API-key socket gets
  `User not authenticated`, a user that is gone (or locked, or of another tenant) `Access denied`.
  Otherwise the interval is clamped (`dashboard.poll_interval_ms`), one tick runs before the
  handler returns and a poller ticks every interval after it. A tick that outlasts the interval
  makes the ticks that fell due meanwhile be skipped.
* `unsubscribeDashboardStatus` and `disconnect` stop the poller: at once if it is waiting for its next
  tick; a tick in progress finishes its database work but emits nothing (see `_Poller`).
* A tick looks the user's subscriptions up again (never from the client), reads each server through
  the shared poll (`SharedPoll`: one provider call per item per interval, whatever the number of
  sockets) and emits one `dashboardStatusUpdate` to the socket. A failing subscription is left out;
  a failing tick is reported as `Failed to load dashboard status` and polling continues; a user
  found gone during polling gets `Access denied` and polling stops.

Everything is emitted to the socket that asked, never broadcast.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import socketio
import structlog

from decabill.config import Settings
from decabill.errors import DecabillError, UserNotAuthenticated
from decabill.identity.auth import authenticate
from decabill.identity.principal import Principal
from decabill.realtime import dashboard
from decabill.realtime._generated import Emitter, Payload, register
from decabill.realtime.polling import Clock, MonotonicClock, SharedPoll
from decabill.tenancy import bound_tenant, resolve_tenant

log = structlog.get_logger(__name__)

USER_NOT_AUTHENTICATED = "User not authenticated"
ACCESS_DENIED = "Access denied"
TICK_FAILED = "Failed to load dashboard status"
FRESHNESS_MARGIN = 1.0  # seconds: a shared reading is reused if taken less than (interval - margin) ago


async def authenticate_handshake(settings: Settings, environ: dict, auth: Any) -> Principal:
    """Tenant from `X-Tenant` or `auth.tenantId`; credentials from `Authorization` or `auth.Authorization`,
    verified by the same `authenticate()` as HTTP. Refusals: `Invalid tenant`, `Unauthorized`."""
    auth = auth if isinstance(auth, dict) else {}
    tenant_id = environ.get("HTTP_X_TENANT") or auth.get("tenantId")
    try:
        tenant = resolve_tenant(tenant_id if isinstance(tenant_id, str) else None, settings.tenants)
    except DecabillError:
        raise socketio.exceptions.ConnectionRefusedError("Invalid tenant") from None
    credentials = environ.get("HTTP_AUTHORIZATION") or auth.get("Authorization") or auth.get("authorization")
    with bound_tenant(tenant):
        try:
            return await authenticate(credentials if isinstance(credentials, str) else None)
        except DecabillError:
            raise socketio.exceptions.ConnectionRefusedError("Unauthorized") from None


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(eq=False)
class _Poller:
    """The timer of one subscription. Stopping it cancels it only while it sleeps: a running tick is left
    to finish (and emits nothing), so no database transaction is ever interrupted half-way (with SQLite a
    cancelled statement can leave the write lock held)."""

    interval_ms: int
    task: asyncio.Task | None = None
    stopped: bool = False
    ticking: bool = False

    def stop(self) -> None:
        self.stopped = True
        if self.task is not None and not self.ticking and self.task is not asyncio.current_task():
            self.task.cancel()


@dataclass
class _Socket:
    principal: Principal
    generation: int = 0  # bumped by every subscribe/unsubscribe/disconnect: a stale first tick starts nothing
    poller: _Poller | None = None
    ticks: int = 0  # snapshots emitted
    skipped: int = 0  # ticks skipped because the previous one was still running
    # (when due, when started) on the gateway's clock, for the last poller ticks of this subscription
    schedule: list[tuple[float, float]] = field(default_factory=list)


class DashboardGateway:
    """Implements the generated `DashboardHandlers` protocol and the `ConnectionHooks`."""

    def __init__(self, sio: socketio.AsyncServer, settings: Settings, *, namespace: str | None = None,
                 validate_outbound: bool | None = None, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or MonotonicClock()
        self.status_cache: SharedPoll[tuple[str, uuid.UUID, uuid.UUID], dict[str, Any]] = SharedPoll(
            self.clock, retention=dashboard.MAX_INTERVAL_MS / 1000)
        self._sockets: dict[str, _Socket] = {}
        self.internal_errors = 0  # ticks of a poller that failed unexpectedly (logged)
        self.emitter: Emitter = register(
            sio, self, settings.websocket_namespace if namespace is None else namespace,
            validate_outbound=settings.validate_responses if validate_outbound is None else validate_outbound,
        )

    # --- introspection (tests, health) ---------------------------------------------------------------

    @property
    def provider_calls(self) -> int:
        """Server-info reads started (each is one provider API call), over all sockets."""
        return self.status_cache.fetches

    @property
    def connected(self) -> int:
        return len(self._sockets)

    @property
    def pollers(self) -> int:
        return sum(1 for s in self._sockets.values() if s.poller is not None and not s.poller.stopped)

    def interval_ms(self, sid: str) -> int | None:
        """The interval the socket's running poller ticks at (None: not polling)."""
        state = self._sockets.get(sid)
        poller = state.poller if state is not None else None
        return poller.interval_ms if poller is not None and not poller.stopped else None

    def socket_state(self, sid: str) -> _Socket | None:
        return self._sockets.get(sid)

    # --- connection hooks ---------------------------------------------------------------------------

    async def connect(self, sid: str, environ: Payload, auth: Any) -> None:
        principal = await authenticate_handshake(self.settings, environ, auth)
        self._sockets[sid] = _Socket(principal)
        log.info("socket.connected", sid=sid, tenant=principal.tenant, method=principal.method)

    async def disconnect(self, sid: str) -> None:
        state = self._sockets.pop(sid, None)
        if state is not None:
            state.generation += 1
            self._stop(state)
            log.info("socket.disconnected", sid=sid, tenant=state.principal.tenant)

    # --- inbound events -----------------------------------------------------------------------------

    async def subscribe_dashboard_status(self, sid: str, payload: Payload) -> None:
        state = self._sockets.get(sid)
        if state is None:  # disconnected meanwhile
            return
        state.generation += 1
        generation = state.generation
        self._stop(state)  # subscribing again replaces the poller; a refused subscribe leaves none
        state.schedule = []
        principal = state.principal
        try:
            with bound_tenant(principal.tenant):
                await dashboard.check_access(principal)
        except UserNotAuthenticated:
            await self._error(sid, USER_NOT_AUTHENTICATED)
            return
        except dashboard.AccessDenied:
            await self._error(sid, ACCESS_DENIED)
            return
        interval = dashboard.poll_interval_ms(payload.get("pollIntervalMs"), self.settings.status_poll_interval)

        def wanted() -> bool:
            return self._sockets.get(sid) is state and state.generation == generation

        if not await self._tick(sid, state, interval, wanted) or not wanted():
            return
        poller = state.poller = _Poller(interval)
        poller.task = asyncio.create_task(self._poll(sid, state, poller), name=f"dashboard-poller-{sid}")

    async def unsubscribe_dashboard_status(self, sid: str, payload: Payload) -> None:
        state = self._sockets.get(sid)
        if state is not None:
            state.generation += 1
            self._stop(state)

    # --- polling ------------------------------------------------------------------------------------

    def _stop(self, state: _Socket) -> None:
        poller, state.poller = state.poller, None
        if poller is not None:
            poller.stop()

    async def _poll(self, sid: str, state: _Socket, poller: _Poller) -> None:
        period = poller.interval_ms / 1000
        due = self.clock.now() + period
        try:
            while not poller.stopped:
                await self.clock.sleep(due - self.clock.now())  # stop() cancels here, and only here
                poller.ticking = True
                state.schedule = [*state.schedule[-19:], (due, self.clock.now())]
                try:
                    keep = await self._tick(sid, state, poller.interval_ms, lambda: not poller.stopped)
                except Exception:  # e.g. an outbound payload that fails validation: a bug, keep polling
                    self.internal_errors += 1
                    log.exception("dashboard.tick_crashed", sid=sid)
                    keep = True
                    if not poller.stopped:
                        await self._error(sid, TICK_FAILED)
                finally:
                    poller.ticking = False
                if not keep:
                    return
                due += period
                now = self.clock.now()
                if now >= due:  # the tick outlasted the interval: the ticks due meanwhile are skipped
                    missed = math.floor((now - due) / period) + 1
                    state.skipped += missed
                    due += missed * period
        finally:
            poller.stopped = True
            if state.poller is poller:
                state.poller = None

    async def _tick(self, sid: str, state: _Socket, interval_ms: int, wanted: Callable[[], bool]) -> bool:
        """Emit one snapshot (unless `wanted()` turned false meanwhile); False when polling must stop."""
        principal = state.principal
        if principal.user_id is None:
            await self._error(sid, USER_NOT_AUTHENTICATED)
            return False
        try:
            with bound_tenant(principal.tenant):
                targets = await dashboard.dashboard_targets(principal)
                results = await asyncio.gather(
                    *(self._status(principal, target, interval_ms) for target in targets), return_exceptions=True)
        except dashboard.AccessDenied:
            if wanted():
                await self._error(sid, ACCESS_DENIED)
            return False
        except Exception:
            log.exception("dashboard.tick_failed", sid=sid, tenant=principal.tenant)
            if wanted():
                await self._error(sid, TICK_FAILED)
            return True
        if not wanted():  # unsubscribed, subscribed again or disconnected while this tick ran
            return False
        items = []
        for target, result in zip(targets, results, strict=True):
            if isinstance(result, BaseException):  # this subscription is left out of the snapshot
                log.info("dashboard.item_skipped", sid=sid, item_id=str(target.item_id),
                         error=getattr(result, "message", None) or type(result).__name__)
            else:
                items.append(result)
        state.ticks += 1
        await self.emitter.dashboard_status_update(sid, {"generatedAt": _now_iso(), "items": items})
        return True

    async def _status(self, principal: Principal, target: dashboard.Target, interval_ms: int) -> dict[str, Any]:
        assert principal.user_id is not None
        key = (principal.tenant, principal.user_id, target.item_id)
        max_age = interval_ms / 1000 - FRESHNESS_MARGIN
        return await self.status_cache.get(key, lambda: dashboard.server_status(principal, target), max_age)

    async def _error(self, sid: str, message: str) -> None:
        await self.emitter.error(sid, {"message": message})

    async def close(self, timeout: float = 10.0) -> None:
        """Stop every poller (a running tick may finish, within `timeout`) and the shared fetches."""
        pollers = [s.poller for s in self._sockets.values() if s.poller is not None]
        for state in self._sockets.values():
            state.generation += 1
            self._stop(state)
        tasks = [p.task for p in pollers if p.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.status_cache.close(timeout)
