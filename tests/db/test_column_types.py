"""Exact money and UTC timestamps survive a round trip on both backends, including SQL aggregates."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, select, type_coerce

from decabill import db

metadata = MetaData()
probe = Table(
    "probe_column_types",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("amount", db.ExactDecimal(4)),
    Column("at", db.UTCDateTime()),
)


@pytest.fixture
async def probe_table(database):
    async with db.get_engine().begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield
    async with db.get_engine().begin() as conn:
        await conn.run_sync(metadata.drop_all)


async def test_exact_decimals_round_trip_and_sum_exactly(probe_table):
    amounts = [Decimal("0.1000"), Decimal("0.2000"), Decimal("12345678901234.5678"), Decimal("-0.0001")]
    async with db.transaction() as session:
        await session.execute(probe.insert(), [{"id": i, "amount": a} for i, a in enumerate(amounts)])
    async with db.transaction() as session:
        stored = [row.amount for row in await session.execute(select(probe.c.amount).order_by(probe.c.id))]
        total = (await session.execute(select(type_coerce(func.sum(probe.c.amount), db.ExactDecimal(4))))).scalar_one()
    assert stored == amounts
    assert all(isinstance(a, Decimal) for a in stored)
    # 0.1 + 0.2 in floats is 0.30000000000000004; here it must be exact.
    assert total == Decimal("12345678901234.8677")


async def test_timestamps_are_stored_as_utc_and_come_back_aware(probe_table):
    berlin = dt.timezone(dt.timedelta(hours=2))
    local = dt.datetime(2026, 6, 1, 23, 30, tzinfo=berlin)
    async with db.transaction() as session:
        await session.execute(probe.insert(), [{"id": 1, "at": local}])
    async with db.transaction() as session:
        back = (await session.execute(select(probe.c.at))).scalar_one()
    assert back.tzinfo is not None and back.utcoffset() == dt.timedelta(0)
    assert back == local  # same instant
    assert back.hour == 21


async def test_naive_timestamps_are_refused(probe_table):
    with pytest.raises(Exception, match="naive datetime"):
        async with db.transaction() as session:
            await session.execute(probe.insert(), [{"id": 2, "at": dt.datetime(2026, 1, 1)}])


async def test_failed_transactions_roll_back_and_after_commit_runs_only_on_success(probe_table):
    ran: list[str] = []

    async def mark() -> None:
        ran.append("sent")

    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await session.execute(probe.insert(), [{"id": 3, "amount": Decimal(1)}])
            db.after_commit(mark)
            raise RuntimeError("boom")
    async with db.transaction() as session:
        assert (await session.execute(select(func.count()).select_from(probe))).scalar_one() == 0
        db.after_commit(mark)
    assert ran == ["sent"]


async def test_scoped_queries_only_see_the_current_tenant(database):
    from decabill.identity.repository import UserRepository
    from decabill.tenancy import bound_tenant
    from models.identity import User

    async with db.transaction() as session:
        session.add(User(tenant_id="default", email="a@example.com", id=uuid.uuid4()))
        session.add(User(tenant_id="acme", email="a@example.com", id=uuid.uuid4()))
    for tenant in ("default", "acme"):
        with bound_tenant(tenant):
            async with db.transaction() as session:
                users = await UserRepository(session).all(UserRepository(session).statement())
        assert [u.tenant_id for u in users] == [tenant]


@pytest.mark.parametrize("limit, offset", [(-351296892015785017344, 0), (10**30, 10**30), (-1, -5), (0, 0)])
async def test_page_clamps_limits_and_offsets_a_database_would_refuse(database, limit, offset):
    from decabill.repository import page
    from models.identity import User

    async with db.transaction() as session:
        rows = (await session.execute(page(select(User), limit, offset))).scalars().all()
    assert rows == []


async def test_result_conversions_give_exactly_the_values_of_process_result_value(probe_table):
    """`ExactDecimal` and `UTCDateTime` convert results with one function per dialect (`result_processor`, no
    Python call through `TypeDecorator` per value): through Core and, on PostgreSQL, on asyncpg's own connection
    (`_DriverStatement`, the hot reads' path) each value is exactly what `process_result_value` makes of the
    driver's raw value — the same Decimal digits and exponent (zero, negatives, more decimals than the scale
    rounded as before, an integer), the same aware UTC datetime, NULL as None. (SQLite's scaled integers keep
    SQLAlchemy's general path; the values are checked all the same.)"""
    from sqlalchemy import literal_column

    from decabill.repository import _DriverStatement

    berlin = dt.timezone(dt.timedelta(hours=2))
    stored = [(Decimal("0"), dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)),
              (Decimal("-0.0001"), dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=berlin)),
              (Decimal("-12.5"), dt.datetime(2026, 6, 1, 0, 0, 0, 1, tzinfo=dt.timezone(-dt.timedelta(hours=9)))),
              (Decimal("12345678901234.5678"), None), (None, dt.datetime(2026, 3, 29, 1, 30, tzinfo=berlin))]
    async with db.transaction() as session:
        await session.execute(probe.insert(), [{"id": i, "amount": a, "at": t} for i, (a, t) in enumerate(stored)])
    postgresql = db.dialect_name() == "postgresql"
    # computed values the column type converts too: an integer, and (PostgreSQL) decimals beyond the scale
    computed = [type_coerce(literal_column("0"), db.ExactDecimal(4)).label("zero")]
    if postgresql:
        computed += [type_coerce(literal_column("(probe_column_types.amount / 3)"), db.ExactDecimal(4)).label("third"),
                     type_coerce(literal_column("-2.00015::numeric"), db.ExactDecimal(4)).label("half"),
                     type_coerce(literal_column("probe_column_types.at"), db.UTCDateTime()).label("again")]
    statement = select(probe.c.id, probe.c.amount, probe.c.at, *computed).order_by(probe.c.id)
    types = [column.type for column in statement.selected_columns]

    def exactly(rows) -> list[tuple[str, ...]]:  # repr: a Decimal's digits and exponent, a datetime's zone
        return [tuple(repr(value) for value in row) for row in rows]

    async with db.transaction() as session:
        connection = await session.connection()
        dialect = connection.dialect
        raw = (await connection.exec_driver_sql(str(statement.compile(dialect=dialect)))).all()
        through_core = (await session.execute(statement)).all()
    if postgresql:  # asyncpg converts nothing itself here: the raw values are what `process_result_value` takes
        expected = [tuple(value if not hasattr(kind, "process_result_value") else
                          kind.process_result_value(value, dialect) for kind, value in zip(types, row, strict=True))
                    for row in raw]
        assert exactly(through_core) == exactly(expected)
    assert [row.amount for row in through_core] == [amount for amount, _ in stored]
    assert repr(through_core[0].zero) == "Decimal('0.0000')" and repr(through_core[0].amount) == "Decimal('0.0000')"
    assert through_core[4].amount is None and through_core[3].at is None
    assert all(row.at is None or row.at.tzinfo is dt.timezone.utc for row in through_core)
    if postgresql:
        assert repr(through_core[0].half) == "Decimal('-2.0002')"  # half-even at the 4th decimal, as quantize does
        assert repr(through_core[2].third) == "Decimal('-4.1667')"
        async with db.read() as unit:
            connection = await unit.connection()
            driver = connection.sync_connection.connection.driver_connection
            made = _DriverStatement(statement, dialect)
            through_driver = await made.fetch(driver, {})
            again = await made.fetch(driver, {})  # the second run: the row maker made at the first
        assert exactly(through_driver) == exactly(again) == exactly(expected)
