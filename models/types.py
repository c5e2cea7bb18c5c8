"""Column types every table uses, and the clock their timestamps default to. A leaf: imports no project code.

SQLite (the embedded default) silently drops time-zone offsets and stores NUMERIC as REAL, so
`UTCDateTime` and `ExactDecimal` normalise both on the way in and out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

UTC = dt.timezone.utc


def system_utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


# "Now" for default timestamps. `decabill.db` plugs its own `utcnow` in (looked up at call time), so rows
# and services read one clock, which tests can move.
_clock: list[Callable[[], dt.datetime]] = [system_utcnow]


def use_clock(clock: Callable[[], dt.datetime]) -> None:
    _clock[0] = clock


def now() -> dt.datetime:
    return _clock[0]()


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

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        """`process_result_value` as one function, where the driver's own conversion is none (asyncpg, psycopg):
        a value the driver already gives in UTC (asyncpg's timestamptz) is returned as it is — what
        `astimezone(UTC)` returns for it too — without two Python calls per value."""
        if self.impl_instance.result_processor(dialect, coltype) is not None:
            return super().result_processor(dialect, coltype)

        def process(value: Any) -> Any:
            if value is None or value.tzinfo is UTC:
                return value
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

        return process


class ExactDecimal(TypeDecorator[Decimal]):
    """Exact decimals: NUMERIC on PostgreSQL, scaled integers on SQLite (where NUMERIC would be a float).

    Integers keep SQL `SUM()` exact on SQLite too; wrap aggregates with `type_coerce(..., ExactDecimal(n))`
    to get Decimals back (`Repository.sum` does).
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

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        """`process_result_value` as one function for a driver that converts nothing itself (asyncpg and psycopg
        give NUMERIC as Decimal): the same quantized Decimal, without two Python calls and the dialect test per
        value. SQLite's scaled integers (and any driver conversion) keep the general path."""
        if dialect.name == "sqlite" or self.impl_instance.result_processor(dialect, coltype) is not None:
            return super().result_processor(dialect, coltype)
        quantum = self._quantum

        def process(value: Any) -> Decimal | None:
            return None if value is None else Decimal(value).quantize(quantum)

        return process
