"""The hot reads' statements as the driver runs them (`decabill.repository._DriverStatement`): their constants are
written into the SQL (asyncpg would encode each at every run), only text, integers and booleans, and the values
PostgreSQL reads from those literals are the values the statement holds. Real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary, Numeric, String, bindparam, literal, select, text
from sqlalchemy.types import DateTime, Uuid

from decabill import db
from decabill.invoicing.repository import InvoiceRepository
from decabill.repository import _DriverStatement
from decabill.tenancy import bound_tenant


@pytest.fixture
async def pg(database):
    if db.dialect_name() != "postgresql":
        pytest.skip("the driver reads are asyncpg's")
    return database


TEXTS = ["", "it's", "back\\slash", "ä€ 😀", "%_", "a\nb", "$1", "'; SELECT 1; --"]
OTHERS = [(0, Integer()), (-(2**40), BigInteger()), (True, Boolean()), (False, Boolean())]
KEPT = [(b"\x00\xff", LargeBinary()), (dt.datetime(2026, 12, 6, 1, 2, 3, 4567, tzinfo=dt.timezone.utc),
                                       DateTime(timezone=True)),
        (Decimal("0.0005"), Numeric(12, 4)), (uuid.UUID(int=7), Uuid())]


def _constants_statement():
    columns = [literal(value, String()).label(f"t{n}") for n, value in enumerate(TEXTS)]
    columns += [literal(value, type_).label(f"o{n}") for n, (value, type_) in enumerate(OTHERS)]
    columns += [literal(value, type_).label(f"k{n}") for n, (value, type_) in enumerate(KEPT)]
    listed = literal("b", String()).in_(["a", "b", "it's"])  # an IN list of constants
    given = bindparam("given", type_=Integer())  # the caller's parameter, beside them
    return select(*columns, listed.label("listed"), (given + 1).label("given"))


async def test_a_statement_s_text_integer_and_boolean_constants_are_written_into_its_sql_and_read_back_alike(pg):
    db.init_engine(pg, pool_size=1, max_overflow=0, pool_timeout=10)
    statement = _constants_statement()
    async with db.read() as unit:
        run_by_driver = _DriverStatement(statement, unit.dialect)
        driver_rows = await run_by_driver.fetch(await unit.driver(), {"given": 41})
    async with db.read() as unit:
        core_rows = (await (await unit.connection()).execute(statement, {"given": 41})).all()
    assert [tuple(row) for row in driver_rows] == [tuple(row) for row in core_rows]
    assert list(driver_rows[0][: len(TEXTS)]) == TEXTS
    for value, _type in KEPT:  # kept as parameters: their literal forms are not theirs exactly
        assert value in tuple(driver_rows[0])
    # the parameters left: the kept kinds only
    assert len(run_by_driver._arguments({"given": 41})) == len(KEPT) + 1  # noqa: SLF001
    assert driver_rows[0].given == 42 and driver_rows[0].listed is True
    assert "'it''s'" in run_by_driver.sql and "IN ('a', 'b', 'it''s')" in run_by_driver.sql


async def test_the_open_invoices_statement_binds_only_the_tenant_and_the_user(pg):
    engine = db.init_engine(pg, pool_size=1, max_overflow=0, pool_timeout=10)
    with bound_tenant("default"):
        async with db.read() as session:
            assert await InvoiceRepository(session).open_of_user_with_number(uuid.uuid4()) == []
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT statement, parameter_types::text FROM pg_prepared_statements"))).all()
    # (the driver prepares it twice: once to learn its column types)
    [(statement, types)] = {tuple(row) for row in rows if "invoices.status IN" in row[0]}
    assert "IN ('issued', 'partially_paid', 'overdue')" in statement
    assert types.count(",") == 1, types  # two parameters: the tenant and the user
