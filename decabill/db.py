"""Database access: the async engine, the transaction boundary, exact column types and tenant scoping.

* `transaction()` is the only way services touch the database. The outermost call owns the session and
  commits (or rolls back); nested calls join it. Callbacks registered with `after_commit()` (emails,
  job enqueues) run only once the data they describe is durable.
* `scoped(Model)` is the only starting point for queries on tenant-owned tables: it always filters on
  the request's tenant, so forgetting the filter in a service is impossible by construction.
* `delete_unreferenced(record, what, hint)` deletes a row or answers 409 naming the rows that still
  point at it (financial and audit rows are never deleted along the way).
* SQLite (the embedded default) silently drops time-zone offsets and stores NUMERIC as REAL, so
  `UTCDateTime` and `ExactDecimal` normalise both on the way in and out.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import BigInteger, DateTime, Numeric, event, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.sql import Select
from sqlalchemy.types import TypeDecorator

from decabill.errors import DecabillError, StillReferenced
from decabill.observability import tracing
from decabill.tenancy import current_tenant

UTC = dt.timezone.utc
T = TypeVar("T")


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


# --- column types ---------------------------------------------------------------------------------


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps no offset, so we store UTC naive
    there and re-attach UTC on read)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column; use an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ExactDecimal(TypeDecorator[Decimal]):
    """Exact decimals: NUMERIC on PostgreSQL, scaled integers on SQLite (where NUMERIC would be a float).

    Integers keep SQL `SUM()` exact on SQLite too; wrap aggregates with `type_coerce(..., ExactDecimal(n))`
    to get Decimals back.
    """

    impl = Numeric
    cache_ok = True

    def __init__(self, scale: int = 4, precision: int = 18):
        super().__init__()
        self.scale = scale
        self.precision = precision
        self._factor = Decimal(10) ** scale
        self._quantum = Decimal(1).scaleb(-scale)

    def load_dialect_impl(self, dialect: Dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value).quantize(self._quantum)
        if dialect.name == "sqlite":
            return int(value * self._factor)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(int(value)) / self._factor).quantize(self._quantum)
        return Decimal(value).quantize(self._quantum)


# --- engine and sessions --------------------------------------------------------------------------


@dataclass
class _Transaction:
    session: AsyncSession
    after_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    commit_on_error: bool = False


_engine: AsyncEngine | None = None
_sessionmaker: async_sessionmaker[AsyncSession] | None = None
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
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def init_engine(url: str, **kwargs: Any) -> AsyncEngine:
    global _engine, _sessionmaker
    if url.startswith("sqlite"):
        from pathlib import Path

        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    else:
        kwargs.setdefault("pool_pre_ping", True)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    tracing.instrument_engine(engine)  # a span per statement when tracing is on
    _engine = engine
    _sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    return engine


def get_engine() -> AsyncEngine:
    if _engine is None:
        raise RuntimeError("database engine not initialised; call decabill.db.init_engine() first")
    return _engine


async def dispose_engine() -> None:
    global _engine, _sessionmaker
    if _engine is not None:
        await _engine.dispose()
    _engine = None
    _sessionmaker = None


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


def after_commit(callback: Callable[[], Awaitable[None]]) -> None:
    """Run `callback` after the current transaction commits (immediately when there is none)."""
    tx = _current.get()
    if tx is None:
        raise RuntimeError("after_commit() called outside a transaction")
    tx.after_commit.append(callback)


def current_session() -> AsyncSession:
    tx = _current.get()
    if tx is None:
        raise RuntimeError("no transaction is open")
    return tx.session


# --- tenant scoping -------------------------------------------------------------------------------


def scoped(model: type[T]) -> Select[tuple[T]]:
    """`SELECT model WHERE tenant_id = <request tenant>`: the only query start for tenant-owned tables."""
    return select(model).where(model.tenant_id == current_tenant())  # type: ignore[attr-defined]


MAX_ROWS = 2**62  # beyond any real table; keeps huge client offsets inside SQLite's INTEGER range


def page(query: Select[Any], limit: int | None, offset: int | None) -> Select[Any]:
    """Apply limit/offset as the contract defines them: limit 0 (or none) means no limit. Values outside
    what a database accepts (negative, beyond 64 bits) are clamped instead of reaching SQL as a 500."""
    query = query.offset(min(max(offset or 0, 0), MAX_ROWS))
    if limit and limit > 0:
        query = query.limit(min(limit, MAX_ROWS))
    return query


def for_update(query: Select[Any], *, skip_locked: bool = False) -> Select[Any]:
    """Row locks on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers."""
    if dialect_name() == "postgresql":
        return query.with_for_update(skip_locked=skip_locked)
    return query


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
    session = current_session()
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


async def delete_unreferenced(record: Any, what: str, hint: str) -> None:
    """Delete `record` in the current transaction, or raise `StillReferenced` (409) naming what still
    points at it. Checked before deleting; a referencing row added concurrently is refused by the foreign
    key at flush, which becomes the same 409 instead of a 500."""
    session = current_session()
    record_id = record.id  # read now: a failed flush leaves the session unable to load attributes
    found = await references(record)
    if found:
        raise StillReferenced(what, record_id, found, hint)
    await session.delete(record)
    try:
        await session.flush()
    except IntegrityError:
        raise StillReferenced(what, record_id, [("other records", 1)], hint) from None


async def ping() -> bool:
    from sqlalchemy import text

    try:
        async with get_engine().connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
