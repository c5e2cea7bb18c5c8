"""Database access: the async engine, the transaction boundary and the clock.

* `transaction()` is how a service opens (or joins) the unit of work; it yields the session the
  service hands to its repositories. The outermost call owns the session and commits (or rolls back);
  nested calls join it. Callbacks registered with `after_commit()` (emails, job enqueues) run only once
  the data they describe is durable.
* Queries live in the domains' repositories (`decabill.repository.Repository` is their base, the one
  place that scopes by tenant); the column types live with the tables (`models.types`).
* `references(record)` names the rows whose foreign key would refuse the record's deletion (used by
  `Repository.remove_unreferenced`: financial and audit rows are never deleted along the way).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import functools
import os
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import event, func, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_object_session,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.engine import Connection
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection
from sqlalchemy.util import queue as sa_queue

from decabill.errors import DecabillError
from decabill.observability import tracing
from models import types
from models.types import ExactDecimal, UTCDateTime  # noqa: F401 - landed migrations name decabill.db.<type>

try:
    from sqlalchemy.util import await_
except ImportError:  # pragma: no cover - SQLAlchemy 2.0 names it await_only
    from sqlalchemy.util import await_only as await_

UTC = dt.timezone.utc
log = structlog.get_logger("decabill.db")


def utcnow() -> dt.datetime:
    return types.system_utcnow()


# Default timestamps of new rows read this module's `utcnow` at call time, so moving the clock here
# (tests do) moves it for the tables too.
types.use_clock(lambda: utcnow())


# --- engine and sessions --------------------------------------------------------------------------


@dataclass
class _Transaction:
    session: AsyncSession
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    commit_on_error: bool = False


_engine: AsyncEngine | None = None
_sessionmaker: async_sessionmaker[AsyncSession] | None = None
_read_sessionmaker: async_sessionmaker[AsyncSession] | None = None
_read_engine: AsyncEngine | None = None  # the engine in autocommit: `read()` units
_generation = 0  # bumped by every init_engine(): process caches of database content key on it
_driver_reads = False  # see driver_reads()
_current: contextvars.ContextVar[_Transaction | None] = contextvars.ContextVar("decabill_tx", default=None)


def _configure_sqlite(engine: AsyncEngine) -> None:
    # SQLite has one writer; taking the write lock when the transaction starts (BEGIN IMMEDIATE) makes
    # concurrent writers queue on busy_timeout instead of failing half-way with "database is locked".
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - driver callback
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn):  # pragma: no cover - driver callback
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":  # `read()` takes no lock
            conn.exec_driver_sql("BEGIN IMMEDIATE")


#: What a unit of work raises when no pooled connection freed up within DB_POOL_TIMEOUT (`init_engine`'s
#: `pool_timeout`): the API answers it with a 503 and `Retry-After` (decabill/web/errors.py) instead of a 500.
PoolTimeout = sa_exc.TimeoutError


class HandOffQueue(sa_queue.AsyncAdaptedQueue):
    """The idle connections of `FairPool`, served first come, first served.

    SQLAlchemy's `AsyncAdaptedQueue` is an `asyncio.Queue`: a connection returned while others wait is put in the
    queue and the oldest waiter is only woken; until that waiter runs (the next turn of the event loop), any
    coroutine asking for a connection takes it without waiting (barging), and the woken waiter, finding the queue
    empty again, queues anew at the END. Under load (c=50 on a pool of 10) some requests lost their place several
    times: p50 25 ms, p99 150-600 ms (docs/performance.md, "The c=50 tail of the authenticated reads"). Here a
    connection returned while coroutines wait is handed to the one that has waited longest (its future gets it),
    and a connection is taken without waiting only when nobody waits. A waiter that gives up (DB_POOL_TIMEOUT, or its request cancelled) as
    the connection reaches it passes it on to the next one."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        self.maxsize = maxsize
        self.use_lifo = use_lifo
        self._idle: deque[Any] = deque()
        self._waiters: deque[asyncio.Future[Any]] = deque()

    def empty(self) -> bool:
        return not self._idle

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._idle)

    def qsize(self) -> int:
        return len(self._idle)

    def waiting(self) -> int:
        """Coroutines waiting for a connection."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    def put_nowait(self, item: Any) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # one that gave up is skipped
                waiter.set_result(item)
                return
        if self.full():
            raise sa_queue.Full()
        self._idle.append(item)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)  # the pool never puts more than it holds: no reason to block

    def get_nowait(self) -> Any:
        if not self._idle:
            raise sa_queue.Empty()
        return self._idle.pop() if self.use_lifo else self._idle.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if self._idle or not block:  # idle connections only while nobody waits (`put_nowait`)
            return self.get_nowait()
        return await_(self._wait(timeout))  # in the pool's greenlet: suspends the caller's coroutine

    async def _wait(self, timeout: float | None) -> Any:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        # A plain timer that fails the waiter, not `asyncio.timeout()`: under load every request waits here, and
        # the timeout's context manager (a task cancellation turned into TimeoutError) cost ~6 µs a wait, the
        # timer ~2 (docs/performance.md, "Less CPU around each hot read").
        timer = loop.call_later(timeout, _give_up_waiting, waiter) if timeout is not None else None
        try:
            return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.put_nowait(waiter.result())  # handed over just as the wait ended: to the next one
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, _WaitExpired):
                raise sa_queue.Empty() from None  # QueuePool turns it into its TimeoutError (`PoolTimeout`)
            raise
        finally:
            if timer is not None:
                timer.cancel()


class _WaitExpired(Exception):
    """A pool waiter's timeout (`HandOffQueue._wait`)."""


def _give_up_waiting(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():  # not handed a connection (nor cancelled) meanwhile
        waiter.set_exception(_WaitExpired())


class FairPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's pool for asyncio drivers with a first-come-first-served hand-off (`HandOffQueue`): a request
    waits for as many connections to be returned as there were waiters before it, never longer."""

    _queue_class = HandOffQueue
    # SQLAlchemy names a pool's logger after its class; under `decabill.` its notices ("Pool disposed", "Pool
    # recreating") would log at our LOG_LEVEL. They are SQLAlchemy's and log where its own pools' do.
    _sqla_logger_namespace = "sqlalchemy.pool.impl.FairPool"

    def _ready(self, record: Any) -> bool:
        """Whether a pooled connection can be used as it is: open, due for neither recycling nor invalidation, and
        no checkout or checkin listener or pre-ping would talk to the database or watch it being handed out."""
        return not (record.dbapi_connection is None or self.dispatch.checkout or self.dispatch.checkin
                    or self._pre_ping or self._invalidate_time > record.starttime
                    or record._soft_invalidate_time > record.starttime  # noqa: SLF001
                    or (self._recycle > -1 and time.time() - record.starttime > self._recycle))

    def _put_back_first(self, record: Any) -> None:
        """A record taken off the queue, back at the head of the line (no await in between: nobody can take it)."""
        queue = self._pool
        if queue.use_lifo:  # type: ignore[attr-defined]
            queue._idle.append(record)  # type: ignore[attr-defined]
        else:
            queue._idle.appendleft(record)  # type: ignore[attr-defined]

    def lease_idle(self) -> Any | None:
        """The idle connection the queue hands out next, taken off it in the caller's coroutine as a bare connection
        record: no `_ConnectionFairy`, no checkout or checkin bookkeeping (together ~6 % of a hot read's CPU). None
        when nobody is idle or the one next in line is not `_ready` (the caller then checks out as usual). An idle
        connection means nobody waits (`HandOffQueue`), so taking it overtakes nobody. The lease ends with
        `give_back`, or becomes a checked-out connection with `check_out_leased`."""
        queue = self._pool
        idle = queue._idle  # type: ignore[attr-defined]  # the HandOffQueue of this pool
        if not idle or not self._ready(idle[-1] if queue.use_lifo else idle[0]):  # type: ignore[attr-defined]
            return None
        return idle.pop() if queue.use_lifo else idle.popleft()  # type: ignore[attr-defined]

    async def lease_in_turn(self) -> Any | None:
        """`lease_idle`, and when every connection is taken and the pool may open no more, the wait for one in
        arrival order among all the pool's waiters (`HandOffQueue`), no greenlet around it: the record handed over
        is the lease. None where SQLAlchemy's checkout has I/O to do (a connection to open or to make again): the
        caller checks out as usual. No connection within the pool's timeout is SQLAlchemy's `TimeoutError`
        (`PoolTimeout`), with its message."""
        record = self.lease_idle()
        queue = self._pool
        if (record is not None or queue._idle or self._max_overflow < 0  # type: ignore[attr-defined]
                or self._overflow < self._max_overflow or self.dispatch.checkout or self._pre_ping):
            return record
        try:
            record = await queue._wait(self._timeout)  # type: ignore[attr-defined]
        except sa_queue.Empty:
            raise PoolTimeout(f"QueuePool limit of size {self.size()} overflow {self.overflow()} reached, connection "
                              f"timed out, timeout {self._timeout:0.2f}", code="3o7r") from None
        if self._ready(record):
            return record
        self._put_back_first(record)  # one to make again: first in line for SQLAlchemy's checkout
        return None

    def give_back(self, record: Any) -> None:
        """The end of a lease: the record to the longest waiter, or idle. No I/O and no reset: the lease gave
        asyncpg's connection statements outside a transaction only."""
        try:
            self._pool.put_nowait(record)
        except sa_queue.Full:  # overflow connections filled the queue meanwhile: this one is surplus, as
            try:  # SQLAlchemy's checkin has it (closed, one overflow less); terminated, as closing awaits I/O
                record.dbapi_connection.driver_connection.terminate()
                record.dbapi_connection = None
            finally:
                self._dec_overflow()

    def check_out_leased(self, record: Any) -> PoolProxiedConnection:
        """A leased record as SQLAlchemy's checked-out connection (for a Core connection or a session on it): put
        back first in line and checked out at once, with no await in between (and no I/O: it was `_ready`)."""
        self._put_back_first(record)
        return self.connect()


def init_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 0, pool_timeout: float = 30.0, **kwargs: Any
) -> AsyncEngine:
    global _engine, _sessionmaker, _read_sessionmaker, _read_engine, _generation, _driver_reads
    _generation += 1
    # A SQLite file's folder is not made here: the embedded default's is made at start-up (decabill.cli), any
    # other must exist (a typo in DATABASE_URL is named there instead of silently creating folders).
    if not url.startswith("sqlite"):
        # Sized for a process's concurrent requests and jobs (DB_POOL_SIZE, DB_POOL_MAX_OVERFLOW): connections
        # beyond the pool are opened and closed per checkout, which under load costs more than the query.
        kwargs.setdefault("pool_size", pool_size)
        kwargs.setdefault("max_overflow", max_overflow)
        kwargs.setdefault("pool_timeout", pool_timeout)  # then `PoolTimeout`
        kwargs.setdefault("poolclass", FairPool)  # served in arrival order (SQLite keeps SQLAlchemy's default pool)
    # No pre-ping: it costs a round trip on every checkout (~10 % of a cheap read). A connection found dead
    # fails its statement instead; SQLAlchemy then invalidates the pool and `retried_on_lost_connection` runs
    # the read again on a fresh connection.
    if url.startswith("postgresql+asyncpg"):
        # No JIT compilation: PostgreSQL compiles, at every run, a statement whose estimated cost passes
        # jit_above_cost. Ours are short, and estimates of generic plans are rough: the admin search's plain-term
        # statement (two page plans, one run) is estimated past it and paid 50-150 ms of compiling for a read of
        # ~0.3 ms; the billing day issued 25-35 % more invoices per second without it (docs/performance.md,
        # "JIT compilation off").
        connect_args = kwargs.setdefault("connect_args", {})
        connect_args.setdefault("server_settings", {}).setdefault("jit", "off")
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    if engine.dialect.driver == "asyncpg":
        event.listen(engine.sync_engine, "before_cursor_execute", _default_plans_for_core)
    tracing.instrument_engine(engine)  # a span per statement when tracing is on
    _driver_reads = engine.dialect.driver == "asyncpg" and not tracing.enabled()
    _engine = engine
    _sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    _read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    _read_sessionmaker = async_sessionmaker(_read_engine, expire_on_commit=False)
    return engine


def generation() -> int:
    """Which engine (database) is current: a process cache of database content keys on it, so an answer read
    from one database is never served for another (tests swap databases; so may an operator's restore)."""
    return _generation


# --- PostgreSQL's plan cache mode, per connection ------------------------------------------------------------

_GENERIC_ON, _GENERIC_OFF = "SET plan_cache_mode = force_generic_plan", "RESET plan_cache_mode"
#: asyncpg connections that may be in `force_generic_plan`, left so by a driver read of a statement marked for it
#: (`repository.generic_plan`). The setting stays with the connection until a statement not marked runs on it:
#: searches one after the other on a connection cost no SET and RESET round trips (with them, two of a search's
#: three, a third of its time: docs/performance.md, "The generic plan kept by the connection").
_generic_plan_connections: weakref.WeakSet[Any] = weakref.WeakSet()


async def use_plans(driver: Any, *, generic: bool) -> None:
    """Put asyncpg's connection `driver` (outside a transaction: a driver read's) in the plan cache mode of the
    statement it runs next: `force_generic_plan` for a statement marked for it, else the database's default — a
    round trip only when the mode changes. A SET or RESET that failed or was cancelled may or may not have taken
    effect: the connection counts as maybe generic, so that the next statement not marked resets it (RESET is
    idempotent)."""
    maybe_generic = driver in _generic_plan_connections
    if generic == maybe_generic:
        return
    _generic_plan_connections.add(driver)
    await driver.execute(_GENERIC_ON if generic else _GENERIC_OFF)
    if not generic:
        _generic_plan_connections.discard(driver)


def _default_plans_for_core(conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any,
                            executemany: bool) -> None:
    """Before a Core (or ORM) statement on asyncpg: a connection a driver read left with generic plans gets the
    database's default back first (in the statement's greenlet, so the RESET is awaited here). Only a RESET
    outside a transaction lasts (one inside could be rolled back): within one the connection stays marked."""
    if not _generic_plan_connections:
        return
    driver = conn.connection.driver_connection
    if driver in _generic_plan_connections:
        await_(driver.execute(_GENERIC_OFF))
        if not driver.is_in_transaction():
            _generic_plan_connections.discard(driver)


def driver_reads() -> bool:
    """Whether `Repository.run` may run the reads of a `read()` on asyncpg's connection itself: PostgreSQL through
    asyncpg, and tracing off (its statement spans come from SQLAlchemy's engine events)."""
    return _driver_reads


def is_driver_read(session: Any) -> bool:
    """Whether `session` is the unit of a `read()` on the driver (`driver_reads()`): its statements may run on
    asyncpg's connection itself (`_DriverReadUnit.driver()`), outside any transaction."""
    return type(session) is _DriverReadUnit


def get_engine() -> AsyncEngine:
    if _engine is None:
        raise RuntimeError("database engine not initialised; call decabill.db.init_engine() first")
    return _engine


async def dispose_engine() -> None:
    global _engine, _sessionmaker, _read_sessionmaker, _read_engine
    if _engine is not None:
        await _engine.dispose()
    _engine = None
    _sessionmaker = None
    _read_sessionmaker = None
    _read_engine = None


def dialect_name() -> str:
    return get_engine().dialect.name


@asynccontextmanager
async def transaction() -> AsyncIterator[AsyncSession]:
    """The transaction boundary of a service method; nested calls join the outer transaction."""
    outer = _current.get()
    if outer is not None:
        yield outer.session
        return
    if _sessionmaker is None:
        raise RuntimeError("database engine not initialised")
    async with _sessionmaker() as session:
        tx = _Transaction(session)
        token = _current.set(tx)
        try:
            yield session
            await session.commit()
        except BaseException as exc:
            if tx.commit_on_error and isinstance(exc, DecabillError):
                await session.commit()
            else:
                await session.rollback()
            raise
        finally:
            _current.reset(token)
    for callback in tx.after_commit:
        await callback()


def retried_on_lost_connection(read: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Run a read-only coroutine once more when its pooled connection turned out dead (database restarted,
    idle connection dropped by a proxy): the caller sees the answer, not a 500. Only for reads: a write is
    never repeated behind the caller's back."""

    @functools.wraps(read)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await read(*args, **kwargs)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            log.warning("db.connection_lost", retried=True)
            return await read(*args, **kwargs)

    return wrapper


class _DriverReadUnit:
    """What `read()` yields where the driver reads are on (`driver_reads()`): a unit of work on a pooled
    connection (autocommit), without an ORM session or even a Core connection until something other than the
    driver's connection is asked of it.

    The hot reads (`Repository.run`) only need asyncpg's connection (`driver()`): its pooled connection is leased
    and given back directly (`FairPool.lease_in_turn`: an idle one at once, else in turn among the pool's waiters),
    without SQLAlchemy's checked-out connection, its `Connection`, its `AsyncConnection` and the greenlet each of
    their calls runs in; where the checkout has I/O to do (a connection to open or to make again) it is
    SQLAlchemy's. `connection()` gives the Core connection (autocommit) — on the connection already leased, if
    any — and any other use (`execute`, `get`, ...) a real `AsyncSession` bound to it: one pooled connection per
    unit either way, from the same pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.bind = engine
        self.dialect = engine.dialect
        self._lease: Any | None = None  # the pool's connection record, leased by `driver()` alone...
        self._lease_pool: Any = None  # ...from this pool (the engine's may be replaced meanwhile: disposed)
        self._connection: AsyncConnection | None = None
        self._session: AsyncSession | None = None

    async def driver(self) -> Any:
        """asyncpg's connection of this unit, for statements outside a transaction only."""
        if self._connection is None and self._session is None:
            if self._lease is None:
                pool = self.bind.sync_engine.pool
                lease = getattr(pool, "lease_in_turn", None)
                self._lease = await lease() if lease is not None else None
                self._lease_pool = pool
            if self._lease is not None:
                return self._lease.dbapi_connection.driver_connection
        return (await self.connection()).sync_connection.connection.driver_connection

    def _core(self) -> AsyncConnection | None:
        """The Core connection of the unit: the one made before, or one made on the connection `driver()` leased
        (the engine's execution options applied to it, as `engine.connect()` does: no I/O, no transaction). A lease
        that would need I/O to be checked out by now (the pool was invalidated meanwhile) is given back: the caller
        then checks out as usual."""
        if self._connection is None and self._lease is not None:
            lease, self._lease = self._lease, None
            pool = self._lease_pool
            if pool is not self.bind.sync_engine.pool or not pool._ready(lease):  # noqa: SLF001
                pool.give_back(lease)
                return None
            pooled = pool.check_out_leased(lease)
            try:
                self._connection = AsyncConnection(self.bind, Connection(self.bind.sync_engine, pooled))
            except BaseException:
                pooled.close()
                raise
        return self._connection

    async def connection(self) -> AsyncConnection:
        if self._session is not None:
            return await self._session.connection()
        if self._core() is None:
            self._connection = await self.bind.connect().start()
        return self._connection  # type: ignore[return-value]

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = AsyncSession(bind=self._core() or self.bind, expire_on_commit=False)
        return self._session

    def __getattr__(self, name: str) -> Any:  # everything else an AsyncSession offers
        return getattr(self.session, name)

    async def close(self) -> None:
        try:
            if self._session is not None:
                await self._session.close()
        finally:
            if self._connection is not None:
                await self._connection.close()
            elif self._lease is not None:
                lease, self._lease = self._lease, None
                self._lease_pool.give_back(lease)  # to the longest waiter, or idle: no I/O


class _Read:
    """`read()`'s unit of work as a plain async context manager. Every hot read enters and leaves one; the
    generator and `asynccontextmanager`'s wrapper around it cost more than the unit's own bookkeeping."""

    __slots__ = ("_joined", "_token", "_tx", "_unit")

    async def __aenter__(self) -> AsyncSession:
        if not _driver_reads or _current.get() is not None:
            self._joined = autocommit()
            return await self._joined.__aenter__()
        if _read_engine is None:
            raise RuntimeError("database engine not initialised")
        self._joined = None
        unit = self._unit = _DriverReadUnit(_read_engine)
        self._tx = _Transaction(unit)  # type: ignore[arg-type]  # nested reads and transactions join this unit
        self._token = _current.set(self._tx)
        return unit  # type: ignore[return-value]

    async def __aexit__(self, exc_type: Any, exc: Any, traceback: Any) -> bool | None:
        if self._joined is not None:
            return await self._joined.__aexit__(exc_type, exc, traceback)
        try:
            _current.reset(self._token)
        finally:
            await self._unit.close()
        if exc_type is None:
            for callback in self._tx.after_commit:  # autocommit: whatever was registered is already durable
                await callback()
        return None


def read() -> _Read:
    """A unit of work that only reads: statements run in autocommit, without the BEGIN/COMMIT round trips (or
    SQLite's write lock) of `transaction()`; inside an open transaction it joins that one. Each statement sees
    its own snapshot — use `transaction()` where several reads must agree. On PostgreSQL through asyncpg (and
    tracing off) the unit is a pooled connection without a session (`_DriverReadUnit`). Use as
    `async with db.read() as session:`."""
    return _Read()


@asynccontextmanager
async def autocommit() -> AsyncIterator[AsyncSession]:
    """`read()` for a unit of work of ONE write statement that is complete by itself (it is its own transaction,
    committed when it returns): one round trip instead of BEGIN, the statement and COMMIT — the mail outbox's
    per-mail state change (decabill/invoicing/mail.py). Never for several writes that must agree."""
    outer = _current.get()
    if outer is not None:
        yield outer.session
        return
    if _read_sessionmaker is None:
        raise RuntimeError("database engine not initialised")
    async with _read_sessionmaker() as session:
        unit = _Transaction(session)
        token = _current.set(unit)  # nested reads (`find_...` helpers) join this session
        try:
            yield session
        finally:
            _current.reset(token)
    for callback in unit.after_commit:  # autocommit: whatever was registered is already durable
        await callback()


def commit_on_error() -> None:
    """Keep this transaction's writes even though a domain error is about to be raised (e.g. counting
    a failed attempt before answering 400)."""
    tx = _current.get()
    if tx is None:
        raise RuntimeError("commit_on_error() called outside a transaction")
    tx.commit_on_error = True


async def advisory_lock(session: AsyncSession, key: str) -> None:
    """A transaction-scoped named lock on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy import text

        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


async def try_advisory_lock(session: AsyncSession, key: str) -> bool:
    """The transaction-scoped named lock if nobody holds it (PostgreSQL); SQLite's BEGIN IMMEDIATE already
    made this transaction the only writer."""
    if session.bind.dialect.name != "postgresql":
        return True
    from sqlalchemy import text

    locked = await session.execute(text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
    return bool(locked.scalar_one())


async def try_advisory_locks(session: AsyncSession, keys: list[str]) -> list[bool]:
    """`try_advisory_lock` of many keys in one statement; per key (in order) whether this transaction holds it."""
    if session.bind.dialect.name != "postgresql":
        return [True] * len(keys)
    from sqlalchemy import text

    statement = text("SELECT pg_try_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest(CAST(:keys AS text[]))"
                     " WITH ORDINALITY AS t(k, n) ORDER BY n")
    return [bool(row[0]) for row in await session.execute(statement, {"keys": keys})]


def after_commit(callback: Callable[[], Awaitable[None]]) -> None:
    """Run `callback` after the current transaction commits (immediately when there is none)."""
    tx = _current.get()
    if tx is None:
        raise RuntimeError("after_commit() called outside a transaction")
    tx.after_commit.append(callback)


def in_transaction() -> bool:
    return _current.get() is not None


def background_task(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task:
    """A task for `coroutine` with the caller's context (tenant, request id) but outside its transaction or
    read: the task opens units of work of its own instead of joining one that may end before it runs."""
    context = contextvars.copy_context()
    context.run(_current.set, None)
    return asyncio.get_running_loop().create_task(coroutine, context=context)


# --- deleting rows other rows point at ------------------------------------------------------------


_FOLLOWS_THE_DELETE = {"CASCADE", "SET NULL", "SET DEFAULT"}


async def references(record: Any) -> list[tuple[str, int]]:
    """(table label, row count) of every table whose foreign key names `record` and would refuse its
    deletion (RESTRICT / NO ACTION). Rows behind an ON DELETE CASCADE or SET NULL key are left out: the
    schema already declares that they go (or are detached) with the record.

    Derived from the metadata, so each later table that references the record's table is covered by
    declaring its foreign key — nothing to register anywhere.
    """
    record_table = record.__table__
    session = async_object_session(record)  # the one the record was loaded in
    assert session is not None, "references() of a row that belongs to no session"
    found = []
    for table in record_table.metadata.sorted_tables:
        for foreign_key in table.foreign_keys:
            if foreign_key.column.table is not record_table:
                continue
            if (foreign_key.ondelete or "").upper() in _FOLLOWS_THE_DELETE:
                continue
            named = getattr(record, foreign_key.column.name)
            query = select(func.count()).select_from(table).where(foreign_key.parent == named)
            count = (await session.execute(query)).scalar_one()
            if count:
                found.append((table.name.replace("_", " "), count))
    return found


async def ping() -> bool:
    from sqlalchemy import text

    try:
        async with get_engine().connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


async def schema_revision(url: str) -> str | None:
    """The Alembic revision of the database at `url`, read over an engine of its own (`decabill doctor` checks a
    configuration without starting anything); raises what the driver raises when it cannot be reached."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import text

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
    finally:
        await engine.dispose()


def postgres_server(url: Any) -> str:
    """Where a PostgreSQL URL (SQLAlchemy's `URL`) connects, for messages: `host:port`, or the Unix socket's path
    when the URL names a socket folder (`?host=/var/run/postgresql`, as DB_HOST=/var/run/postgresql writes it)."""
    folder = url.query.get("host")
    port = url.query.get("port") or url.port or 5432
    if isinstance(folder, str) and folder.startswith("/"):
        return f"{folder.rstrip('/')}/.s.PGSQL.{port}"
    return f"{url.host}:{port}"


async def unusable_reason(url: str, timeout: float = 10.0) -> str | None:
    """Why the database at `url` cannot be used, in one line (None when it answers). Start-up asks this before
    migrating, so that an operator reads "database 'x' does not exist" instead of a driver's traceback."""
    import asyncio
    from pathlib import Path

    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return None
        folder = Path(parsed.database).parent
        if not folder.is_dir():
            return f"the folder {folder} of the SQLite file does not exist"
        if not os.access(folder, os.W_OK):
            return f"the folder {folder} of the SQLite file is not writable"
        return None
    where = f"PostgreSQL at {postgres_server(parsed)}"
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with asyncio.timeout(timeout), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None
    except TimeoutError:
        return f"{where} does not answer within {timeout:.0f} s"
    except Exception as exc:  # noqa: BLE001 - every driver error becomes the one line the operator reads
        cause = getattr(exc, "orig", None) or exc
        name = type(cause).__name__
        if name == "InvalidCatalogNameError" or "does not exist" in str(cause) and "database" in str(cause):
            return f"database {parsed.database!r} does not exist on {where}"
        if name in ("InvalidPasswordError", "InvalidAuthorizationSpecificationError"):
            return f"{where} refuses the user {parsed.username!r}: {str(cause).splitlines()[0]}"
        if isinstance(cause, OSError):
            return f"cannot reach {where}: {cause.strerror or cause}"
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        return f"cannot use {where}: {name}{': ' + first if first else ''}"
    finally:
        await engine.dispose()
