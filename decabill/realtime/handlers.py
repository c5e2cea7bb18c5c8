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
* A tick looks the user's subscriptions up again (never from the client) and reads each server, then
  emits one `dashboardStatusUpdate` to the socket. A failing subscription is left out; a failing tick is
  reported as `Failed to load dashboard status` and polling continues; a user found gone during polling
  gets `Access denied` and polling stops.

What a tick costs grows with users and servers, not with sockets:

* Ticks fall on a grid: every socket of a user ticks at the same instants (the user's phase, one of
  `SLOTS` per interval, spreads the users over the interval).
* The watch lists (user → targets) are cached per user for the interval (`SharedPoll`) and loaded by a
  `Batcher`: the users whose ticks fall due together cost one transaction of two queries per tenant.
* Server readings are shared per server (`SharedPoll`, and across processes `ClusterReadings` with a
  Redis lease), at most DASHBOARD_PROVIDER_CONCURRENCY at once; a provider that answers 429 is left alone
  for a growing pause (its servers show their last reading meanwhile). Database work of the gateway runs
  at most DASHBOARD_DB_CONCURRENCY at once, so the pool is never exhausted by dashboards.
* A change (`decabill.changes`: start, stop, restart, provisioned, cancellation, suspension...) made in
  this process or, through Redis, in another, drops the cached readings and pushes a fresh snapshot to
  every socket of the server's user at once.

* The polling sockets of one user at one interval share a room of this process (`dashboard:<tenant>:<user>:
  <interval>`): they tick at the same grid points, and a grid tick is read, validated, encoded and emitted once to
  the room (`_Round`) instead of once per socket; the other sockets of the round only count it.

Nothing is broadcast: a room holds the sockets of one user only, and rooms are never sent through the message
queue (each process emits to its own sockets); first snapshots, pushes and errors go to the socket concerned.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import math
import uuid
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import socketio
import structlog

from decabill import changes
from decabill.config import Settings
from decabill.errors import DecabillError
from decabill.identity.auth import authenticate
from decabill.identity.principal import Principal
from decabill.realtime import dashboard
from decabill.realtime._generated import Emitter, Payload, register
from decabill.realtime.cluster import ClusterReadings
from decabill.realtime.polling import Batcher, Clock, MonotonicClock, SharedPoll
from decabill.tenancy import bound_tenant, resolve_tenant

log = structlog.get_logger(__name__)

USER_NOT_AUTHENTICATED = "User not authenticated"
ACCESS_DENIED = "Access denied"
TICK_FAILED = "Failed to load dashboard status"
FRESHNESS_MARGIN = 1.0  # seconds: a shared reading is reused if taken less than (interval - margin) ago
# Phases per interval the users are spread over: a slot's users share one watch-list load, and fine slots keep the
# provider reads of a tick small bursts (10 slots made 100 reads fall due at once at 1,000 users: the last of them
# waited for the others, and which user came last changed from tick to tick — seconds of jitter).
SLOTS = 100
RATE_LIMIT_CODES = {429, "429", "rate_limit_exceeded", "too_many_requests"}
MAX_BACKOFF_SECONDS = 60.0

UserKey = tuple[str, uuid.UUID]  # (tenant, user id)
ItemKey = tuple[str, uuid.UUID]  # (tenant, item id)


def user_phase(tenant: str, user_id: uuid.UUID) -> float:
    """The user's place in every interval, as a fraction (the same in every process)."""
    digest = hashlib.sha1(f"{tenant}:{user_id}".encode()).digest()
    return (int.from_bytes(digest[:4], "big") % SLOTS) / SLOTS


class ProviderBackingOff(DecabillError):
    def __init__(self) -> None:
        super().__init__("Provider rate limit: backing off")


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
    pushing: bool = False  # a pushed snapshot is being produced
    dirty: bool = False  # another change arrived while pushing: push once more

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
    pushes: int = 0  # of them, pushed on a change
    skipped: int = 0  # ticks skipped because the previous one was still running
    # (when due, when started) on the gateway's clock, for the last poller ticks of this subscription
    schedule: list[tuple[float, float]] = field(default_factory=list)
    room: str | None = None  # the room of the user's sockets polling at the same interval (while polling)


@dataclass(eq=False)
class _Round:
    """One grid tick of a room: the snapshot is read, validated, encoded and emitted once for all its sockets."""

    due: float
    outcome: asyncio.Future[str]  # "ok", ACCESS_DENIED or TICK_FAILED


class DashboardGateway:
    """Implements the generated `DashboardHandlers` protocol and the `ConnectionHooks`."""

    def __init__(self, sio: socketio.AsyncServer, settings: Settings, *, namespace: str | None = None,
                 validate_outbound: bool | None = None, clock: Clock | None = None, redis: Any = None) -> None:
        self.settings = settings
        self.clock = clock or MonotonicClock()
        retention = dashboard.MAX_INTERVAL_MS / 1000
        self.status_cache: SharedPoll[ItemKey, dict[str, Any]] = SharedPoll(self.clock, retention=retention)
        self.watch_lists: SharedPoll[UserKey, list[dashboard.Target] | None] = SharedPoll(
            self.clock, retention=retention)
        self.loader: Batcher[UserKey, list[dashboard.Target] | None] = Batcher(self._load_watch_lists)
        self._db_slots = asyncio.Semaphore(settings.dashboard_db_concurrency)
        self._provider_slots = asyncio.Semaphore(settings.dashboard_provider_concurrency)
        self.db_in_use = self.db_in_use_max = 0  # the gateway's database work at once (now, highest)
        self._backoff: dict[str, tuple[float, float]] = {}  # provider -> (until, last pause) on the clock
        self._last_good: dict[ItemKey, dict[str, Any]] = {}
        self._changed_at: dict[ItemKey, float] = {}  # wall clock of the last change of a server
        self._owners: dict[tuple[str, uuid.UUID], uuid.UUID] = {}  # (tenant, subscription) -> user
        self._sockets: dict[str, _Socket] = {}
        self._by_user: dict[UserKey, set[str]] = {}
        self._rounds: dict[str, _Round] = {}  # room -> its latest round
        self._room_members: dict[str, int] = {}
        self._namespace = settings.websocket_namespace if namespace is None else namespace
        self.internal_errors = 0  # ticks of a poller that failed unexpectedly (logged)
        self.rate_limited = 0  # provider answers 429 seen
        self.cluster = (ClusterReadings(redis, settings.redis_key_prefix, wall=self.clock.wall)
                        if redis is not None else None)
        self._redis = redis
        self._listener: asyncio.Task | None = None
        self._background: set[asyncio.Task] = set()
        self._unlisten = changes.listen(self.on_change)
        self.emitter: Emitter = register(
            sio, self, settings.websocket_namespace if namespace is None else namespace,
            validate_outbound=settings.validate_responses if validate_outbound is None else validate_outbound,
        )

    # --- introspection (tests, health) ---------------------------------------------------------------

    @property
    def provider_calls(self) -> int:
        """Provider reads this process made (each is one provider API call), over all sockets."""
        return self.cluster.provider_reads if self.cluster is not None else self.status_cache.fetches

    @property
    def watch_list_loads(self) -> int:
        """Batched loads of watch lists (one transaction of two queries per tenant each)."""
        return self.loader.loads

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
        async with self._database():  # thousands of reconnects at once queue here, not in the pool
            principal = await authenticate_handshake(self.settings, environ, auth)
        self._ensure_listening()
        self._sockets[sid] = _Socket(principal)
        if principal.user_id is not None:
            self._by_user.setdefault((principal.tenant, principal.user_id), set()).add(sid)
        log.info("socket.connected", sid=sid, tenant=principal.tenant, method=principal.method)

    async def disconnect(self, sid: str) -> None:
        state = self._sockets.pop(sid, None)
        if state is not None:
            state.generation += 1
            self._stop(sid, state)
            if state.principal.user_id is not None:
                key = (state.principal.tenant, state.principal.user_id)
                sids = self._by_user.get(key)
                if sids is not None:
                    sids.discard(sid)
                    if not sids:
                        del self._by_user[key]
            log.info("socket.disconnected", sid=sid, tenant=state.principal.tenant)

    # --- inbound events -----------------------------------------------------------------------------

    async def subscribe_dashboard_status(self, sid: str, payload: Payload) -> None:
        state = self._sockets.get(sid)
        if state is None:  # disconnected meanwhile
            return
        state.generation += 1
        generation = state.generation
        self._stop(sid, state)  # subscribing again replaces the poller; a refused subscribe leaves none
        state.schedule = []
        if state.principal.user_id is None:
            await self._error(sid, USER_NOT_AUTHENTICATED)
            return
        interval = dashboard.poll_interval_ms(payload.get("pollIntervalMs"), self.settings.status_poll_interval)

        def wanted() -> bool:
            return self._sockets.get(sid) is state and state.generation == generation

        # The first snapshot is read fresh: it is also the access check (user gone or locked: `Access denied`).
        if not await self._tick(sid, state, interval, wanted, fresh=True) or not wanted():
            return
        poller = state.poller = _Poller(interval)
        self._join_room(sid, state, interval)
        poller.task = asyncio.create_task(self._poll(sid, state, poller), name=f"dashboard-poller-{sid}")

    async def unsubscribe_dashboard_status(self, sid: str, payload: Payload) -> None:
        state = self._sockets.get(sid)
        if state is not None:
            state.generation += 1
            self._stop(sid, state)

    # --- polling ------------------------------------------------------------------------------------

    def _join_room(self, sid: str, state: _Socket, interval_ms: int) -> None:
        """The sockets of a user polling at one interval tick at the same instants: they share a room, and each
        tick is emitted once to it (one encoded packet for all of them; local rooms only, never the queue)."""
        assert state.principal.user_id is not None
        room = f"dashboard:{state.principal.tenant}:{state.principal.user_id}:{interval_ms}"
        self.emitter.sio.manager.basic_enter_room(sid, self._namespace_key, room)
        self._room_members[room] = self._room_members.get(room, 0) + 1
        state.room = room

    def _leave_room(self, sid: str, state: _Socket) -> None:
        room, state.room = state.room, None
        if room is None:
            return
        self.emitter.sio.manager.basic_leave_room(sid, self._namespace_key, room)
        left = self._room_members[room] = self._room_members[room] - 1
        if left <= 0:
            del self._room_members[room]
            self._rounds.pop(room, None)

    @property
    def _namespace_key(self) -> str:
        return self.emitter.namespace

    def _stop(self, sid: str, state: _Socket) -> None:
        self._leave_room(sid, state)
        poller, state.poller = state.poller, None
        if poller is not None:
            poller.stop()

    def _first_due(self, state: _Socket, period: float) -> float:
        """The user's first grid point at least half an interval from now (the first snapshot was just sent)."""
        assert state.principal.user_id is not None
        phase = user_phase(state.principal.tenant, state.principal.user_id) * period
        earliest = self.clock.now() + period / 2
        return math.ceil((earliest - phase) / period) * period + phase

    async def _poll(self, sid: str, state: _Socket, poller: _Poller) -> None:
        period = poller.interval_ms / 1000
        due = self._first_due(state, period)
        try:
            while not poller.stopped:
                await self.clock.sleep(due - self.clock.now())  # stop() cancels here, and only here
                poller.ticking = True
                state.schedule = [*state.schedule[-19:], (due, self.clock.now())]
                try:
                    keep = await self._round_tick(sid, state, poller.interval_ms, due, lambda: not poller.stopped)
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

    async def _tick(self, sid: str, state: _Socket, interval_ms: int, wanted: Callable[[], bool], *,
                    fresh: bool = False) -> bool:
        """Emit one snapshot (unless `wanted()` turned false meanwhile); False when polling must stop."""
        if state.principal.user_id is None:
            await self._error(sid, USER_NOT_AUTHENTICATED)
            return False
        outcome, payload = await self._snapshot(sid, state.principal, interval_ms, fresh=fresh)
        return await self._deliver(sid, state, outcome, payload, wanted, to=sid)

    async def _round_tick(self, sid: str, state: _Socket, interval_ms: int, due: float,
                          wanted: Callable[[], bool]) -> bool:
        """A grid tick of a polling socket. The first socket of its room due at `due` reads the snapshot and emits
        it to the room (all the sockets of the user at this interval); the others of the same round only wait for
        that and count it. A socket whose room's round is over (it woke late) gets its own snapshot."""
        room = state.room
        if room is None or state.principal.user_id is None:
            return await self._tick(sid, state, interval_ms, wanted)
        current = self._rounds.get(room)
        if current is not None and current.due == due:
            outcome = await asyncio.shield(current.outcome)
            if outcome == "ok":
                if not wanted():
                    return False
                state.ticks += 1
                return True
            return await self._deliver(sid, state, outcome, None, wanted, to=sid)
        current = self._rounds[room] = _Round(due, asyncio.get_running_loop().create_future())
        try:
            # Readings taken for an earlier tick are not reused, however late they were taken: one provider read
            # per server and tick.
            outcome, payload = await self._snapshot(sid, state.principal, interval_ms, since=due - FRESHNESS_MARGIN)
        except BaseException:
            current.outcome.set_result(TICK_FAILED)
            raise
        current.outcome.set_result(outcome)
        if outcome != "ok":
            return await self._deliver(sid, state, outcome, payload, wanted, to=sid)
        if not wanted():  # this socket stopped meanwhile (it left the room): the others still get the tick
            await self.emitter.dashboard_status_update(room, payload, local=True)
            return False
        return await self._deliver(sid, state, outcome, payload, wanted, to=room)

    async def _deliver(self, sid: str, state: _Socket, outcome: str, payload: Payload | None,
                       wanted: Callable[[], bool], *, to: str) -> bool:
        if outcome == ACCESS_DENIED:
            if wanted():
                await self._error(sid, ACCESS_DENIED)
            return False
        if outcome == TICK_FAILED:
            if wanted():
                await self._error(sid, TICK_FAILED)
            return True
        if not wanted():  # unsubscribed, subscribed again or disconnected while this tick ran
            return False
        assert payload is not None
        state.ticks += 1
        await self.emitter.dashboard_status_update(to, payload, local=True if to != sid else None)
        return True

    async def _snapshot(self, sid: str, principal: Principal, interval_ms: int, *, fresh: bool = False,
                        since: float | None = None) -> tuple[str, Payload | None]:
        """("ok", the payload), (ACCESS_DENIED, None) or (TICK_FAILED, None). Server readings at most an interval
        less `FRESHNESS_MARGIN` old, and taken at or after `since` (the clock's time) if given."""
        assert principal.user_id is not None
        max_age = interval_ms / 1000 - FRESHNESS_MARGIN
        key = (principal.tenant, principal.user_id)
        try:
            targets = await self.watch_lists.get(key, lambda: self.loader.get(key), 0.0 if fresh else max_age)
            if targets is None:
                raise dashboard.AccessDenied()
            results = await asyncio.gather(
                *(self._status(principal.tenant, target, max_age, since) for target in targets),
                return_exceptions=True)
        except dashboard.AccessDenied:
            return ACCESS_DENIED, None
        except Exception:
            log.exception("dashboard.tick_failed", sid=sid, tenant=principal.tenant)
            return TICK_FAILED, None
        items = []
        for target, result in zip(targets, results, strict=True):
            if isinstance(result, BaseException):  # this subscription is left out of the snapshot
                log.info("dashboard.item_skipped", sid=sid, item_id=str(target.item_id),
                         error=getattr(result, "message", None) or type(result).__name__)
            else:
                items.append(result)
        return "ok", {"generatedAt": _now_iso(), "items": items}

    # --- reading: watch lists (batched) and servers (shared) ----------------------------------------------

    async def _load_watch_lists(self, keys: list[UserKey]) -> dict[UserKey, list[dashboard.Target] | None]:
        by_tenant: dict[str, list[uuid.UUID]] = {}
        for tenant, user_id in keys:
            by_tenant.setdefault(tenant, []).append(user_id)
        out: dict[UserKey, list[dashboard.Target] | None] = {}
        for tenant, user_ids in by_tenant.items():
            async with self._database():
                with bound_tenant(tenant):
                    lists = await dashboard.load_watch_lists(user_ids)
            for user_id, targets in lists.items():
                out[(tenant, user_id)] = targets
                for target in targets or ():
                    self._owners[(tenant, target.subscription_id)] = user_id
        return out

    @contextlib.asynccontextmanager
    async def _database(self) -> AsyncIterator[None]:
        async with self._db_slots:
            self.db_in_use += 1
            self.db_in_use_max = max(self.db_in_use_max, self.db_in_use)
            try:
                yield
            finally:
                self.db_in_use -= 1

    async def _status(self, tenant: str, target: dashboard.Target, max_age: float,
                      since: float | None) -> dict[str, Any]:
        key = (tenant, target.item_id)
        return await self.status_cache.get(key, lambda: self._read_server(tenant, target, max_age, since), max_age,
                                           since=since)

    async def _read_server(self, tenant: str, target: dashboard.Target, max_age: float,
                           since: float | None) -> dict[str, Any]:
        if self.cluster is None:
            return await self._read_provider(tenant, target)
        # The same freshness on the wall clock (the readings of the other processes carry it), and none taken before
        # the server's last change.
        wall, now = self.clock.wall(), self.clock.now()
        oldest = max(wall - max_age, wall - (now - since) if since is not None else 0.0,
                     self._changed_at.get((tenant, target.item_id), 0.0))
        return await self.cluster.get(f"{tenant}:{target.item_id}", lambda: self._read_provider(tenant, target), oldest)

    async def _read_provider(self, tenant: str, target: dashboard.Target) -> dict[str, Any]:
        key = (tenant, target.item_id)
        provider = target.server.provider or ""
        async with self._provider_slots:
            until, pause = self._backoff.get(provider, (0.0, 0.0))
            if self.clock.now() < until:  # the provider asked us to slow down: show the last reading meanwhile
                if key in self._last_good:
                    return self._last_good[key]
                raise ProviderBackingOff()
            try:
                with bound_tenant(tenant):
                    status, snapshot = await dashboard.server_status(target)
            except DecabillError as exc:
                if getattr(exc, "code", None) in RATE_LIMIT_CODES:
                    self.rate_limited += 1
                    pause = min(max(pause * 2, 1.0), MAX_BACKOFF_SECONDS)
                    self._backoff[provider] = (self.clock.now() + pause, pause)
                    log.warning("dashboard.provider_rate_limited", provider=provider, pause_seconds=pause)
                    if key in self._last_good:  # the dashboard keeps showing the server meanwhile
                        return self._last_good[key]
                raise
        if snapshot is not None:  # the stored snapshot (the update job's fallback address) follows the reading
            async with self._database():
                with bound_tenant(tenant):
                    await dashboard.store_snapshot(target.item_id, snapshot)
        self._backoff.pop(provider, None)
        self._last_good[key] = status
        return status

    # --- changes: pushed at once ---------------------------------------------------------------------------

    def on_change(self, change: changes.ServerChange) -> None:
        """A server changed (this process, or another through Redis): drop what is cached of it and push a fresh
        snapshot to every socket of its user."""
        task = asyncio.ensure_future(self._apply_change(change))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _apply_change(self, change: changes.ServerChange) -> None:
        try:
            tenant, subscription_id = change.tenant, uuid.UUID(change.subscription_id)
            user_id = uuid.UUID(change.user_id) if change.user_id else self._owners.get((tenant, subscription_id))
            if user_id is None:
                async with self._database():
                    with bound_tenant(tenant):
                        user_id = await dashboard.owner_of(subscription_id)
            if user_id is None:
                return
            user_key = (tenant, user_id)
            cached = self.watch_lists.peek(user_key) or []
            items = {uuid.UUID(change.item_id)} if change.item_id else set()
            items |= {t.item_id for t in cached if t.subscription_id == subscription_id}
            for item_id in items:
                self._changed_at[(tenant, item_id)] = change.at
                self.status_cache.forget((tenant, item_id))
            self.watch_lists.forget(user_key)
            for sid in list(self._by_user.get(user_key, ())):
                state = self._sockets.get(sid)
                if state is not None and state.poller is not None and not state.poller.stopped:
                    await self._push(sid, state, state.poller)
        except Exception:
            log.exception("dashboard.change_failed", kind=change.kind)

    async def _push(self, sid: str, state: _Socket, poller: _Poller) -> None:
        if poller.pushing:
            poller.dirty = True
            return
        poller.pushing = True

        async def run() -> None:
            try:
                while not poller.stopped:
                    poller.dirty = False
                    if await self._tick(sid, state, poller.interval_ms, lambda: not poller.stopped):
                        state.pushes += 1
                    if not poller.dirty:
                        break
            except Exception:
                self.internal_errors += 1
                log.exception("dashboard.push_failed", sid=sid)
            finally:
                poller.pushing = False

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _ensure_listening(self) -> None:
        """With Redis: one subscriber per process for the changes and the readings of the others."""
        if self._redis is None or self._listener is not None:
            return
        self._listener = asyncio.ensure_future(self._listen())

    async def _listen(self) -> None:
        changes_channel = changes.channel(self.settings.redis_key_prefix)
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                channels = [changes_channel] + ([self.cluster.channel] if self.cluster is not None else [])
                await pubsub.subscribe(*channels)
                async for message in pubsub.listen():
                    channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
                    data = message["data"].decode() if isinstance(message["data"], bytes) else str(message["data"])
                    if channel == changes_channel:
                        change, origin = changes.ServerChange.from_json(data)
                        if origin != changes.ORIGIN:  # our own changes reached us in-process already
                            self.on_change(change)
                    elif self.cluster is not None:
                        self.cluster.published(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("dashboard.redis_listener_failed", error=str(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _error(self, sid: str, message: str) -> None:
        await self.emitter.error(sid, {"message": message})

    async def close(self, timeout: float = 10.0) -> None:
        """Stop every poller (a running tick may finish, within `timeout`), the listener and the shared fetches."""
        self._unlisten()
        pollers = [s.poller for s in self._sockets.values() if s.poller is not None]
        for sid, state in self._sockets.items():
            state.generation += 1
            self._stop(sid, state)
        tasks = [p.task for p in pollers if p.task is not None] + list(self._background)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self.loader.close()
        await self.status_cache.close(timeout)
        await self.watch_lists.close(timeout)
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
