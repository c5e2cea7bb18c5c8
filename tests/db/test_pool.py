"""The connection pool of PostgreSQL (`decabill.db.FairPool`): waiters are served in arrival order, a request that
gets no connection within DB_POOL_TIMEOUT is a 503, and a connection handed to a waiter that gave up goes on to the
next one. Real PostgreSQL; the API through HTTP."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from decabill import db
from decabill.db import HandOffQueue


@pytest.fixture
async def pg(database):
    if db.dialect_name() != "postgresql":
        pytest.skip("the pool of PostgreSQL connections (SQLite keeps SQLAlchemy's own)")
    return database


async def _settled() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_connection_returned_goes_to_the_longest_waiter_not_to_whoever_asks_first(pg):
    """Pool of one. Five readers queue for it in turn while the holder keeps it; the holder then returns it and at
    once asks again, as a request arriving at that moment would. The readers get it in arrival order, the holder
    last. (SQLAlchemy's asyncio.Queue let the holder take it back — barging — and the woken first reader, finding
    the queue empty, queued again behind the others: under load some requests waited many turns.)"""
    engine = db.init_engine(pg, pool_size=1, max_overflow=0, pool_timeout=10)
    served: list[str] = []

    async def reader(name: str) -> None:
        async with engine.connect() as conn:
            served.append(name)
            await conn.execute(text("SELECT 1"))

    holder = await engine.connect()
    await holder.execute(text("SELECT 1"))
    readers = []
    for n in range(5):
        readers.append(asyncio.create_task(reader(f"reader {n}")))
        await _settled()  # each one waiting before the next starts
    assert served == [] and engine.sync_engine.pool.checkedout() == 1
    await holder.close()
    await reader("holder again")  # asks in the same turn of the loop as it returned the connection
    await asyncio.gather(*readers)
    assert served == [f"reader {n}" for n in range(5)] + ["holder again"]
    await db.dispose_engine()


async def test_under_contention_reads_are_served_in_arrival_order(pg):
    """Forty reads (`db.read()`, the hot reads' unit of work) on a pool of two, each asking for another read as
    soon as it returned its connection (as the next request on a keep-alive connection would): every read gets its
    connection in the order it asked for one — the second round queues behind the first, it does not overtake the
    waiters it finds."""
    from decabill.identity.repository import UserRepository

    engine = db.init_engine(pg, pool_size=2, max_overflow=0, pool_timeout=10)
    async with engine.connect() as one, engine.connect() as two:  # both open: the order of connecting is not tested
        await one.execute(text("SELECT 1"))
        await two.execute(text("SELECT 1"))
    asked: list[int] = []
    got: list[int] = []

    async def read(n: int, again: bool) -> None:
        async with db.read() as session:
            asked.append(n)
            await session.connection()
            got.append(n)
            await UserRepository(session).count()
            await asyncio.sleep(0.001 * (n % 3))  # uneven holding times
        if again:  # asks in the same turn of the loop as it returned its connection
            await read(n + 100, False)

    await asyncio.gather(*(read(n, True) for n in range(40)))
    assert len(got) == 80 and got == asked
    assert engine.sync_engine.pool.checkedout() == 0
    await db.dispose_engine()


async def test_a_waiter_that_gives_up_as_the_connection_reaches_it_passes_it_on():
    """The queue itself: a waiter cancelled after the connection was handed to it (its request ended) gives it to
    the next waiter; one cancelled before is skipped; a timeout is the pool's `Empty` and leaves nobody waiting."""
    from sqlalchemy.util import greenlet_spawn

    from sqlalchemy.util import queue as sa_queue

    queue = HandOffQueue(maxsize=2)

    async def get(timeout: float | None = None):
        return await greenlet_spawn(queue.get, True, timeout)

    first, second, third = (asyncio.create_task(get()) for _ in range(3))
    await _settled()
    assert queue.waiting() == 3
    first.cancel()  # before anything is returned: skipped
    await _settled()
    queue.put_nowait("connection A")  # handed to `second`...
    second.cancel()  # ...which gives up before it runs: `third` gets it
    assert await third == "connection A"
    for task in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert queue.waiting() == 0 and queue.qsize() == 0

    with pytest.raises(sa_queue.Empty):
        await get(timeout=0.05)
    assert queue.waiting() == 0
    queue.put_nowait("connection B")
    assert queue.qsize() == 1 and await get() == "connection B"


async def test_a_request_that_gets_no_connection_in_time_is_answered_503_and_the_pool_recovers(pg, api):
    """Every pooled connection busy for DB_POOL_TIMEOUT: the request is answered 503 with Retry-After in the
    contract's error shape (not a 500, not a hang), and once a connection is free again requests are served."""
    admin = await api.admin_token()
    engine = db.init_engine(pg, pool_size=1, max_overflow=0, pool_timeout=0.3)
    holder = await engine.connect()
    await holder.execute(text("SELECT 1"))
    try:
        busy = await api.get("/admin/billing/invoices?limit=5", token=admin)
    finally:
        await holder.close()
    assert busy.status_code == 503, busy.text
    assert busy.headers["retry-after"] == "1"
    assert busy.json() == {
        "statusCode": 503,
        "message": "The server is busy; try again shortly",
        "error": "Service Unavailable",
    }
    assert engine.sync_engine.pool.checkedout() == 0
    served = await api.get("/admin/billing/invoices?limit=5", token=admin)
    assert served.status_code == 200, served.text
    await db.dispose_engine()


async def test_a_read_returns_its_connection_before_the_answer_is_shaped_and_sent(pg, api, monkeypatch):
    """The hot reads (`db.read()`) hold their pooled connection around their statement only: by the time the
    handler shapes the answer (and the response is encoded and written after it) the connection is back in the pool
    for the next request. At c=50 a connection held across shaping and sending would serve fewer requests each."""
    import handlers.invoices

    admin = await api.admin_token()
    customer = await api.user_token(admin, "reader@example.com")
    assert (await api.get("/invoices/summary", token=customer)).status_code == 200
    events: list[tuple[str, asyncio.Task | None]] = []  # per task: a token re-check may run beside the request
    close, dump = db._DriverReadUnit.close, handlers.invoices.dump

    async def watching_close(self):
        await close(self)
        events.append(("connection returned", asyncio.current_task()))

    def watching_dump(*args, **kwargs):
        events.append(("answer shaped", asyncio.current_task()))
        return dump(*args, **kwargs)

    monkeypatch.setattr(db._DriverReadUnit, "close", watching_close)
    monkeypatch.setattr(handlers.invoices, "dump", watching_dump)
    answer = await api.get("/invoices/summary", token=customer)
    assert answer.status_code == 200, answer.text
    request = next(task for event, task in events if event == "answer shaped")
    assert [event for event, task in events if task is request] == ["connection returned", "answer shaped"]


async def test_a_hot_read_checks_its_connection_out_directly_in_turn_and_through_sqlalchemy_to_reconnect(pg,
                                                                                                      monkeypatch):
    """The statements of a `db.read()` on the driver (`Repository.run`) check their connection out of the pool and
    back in directly (`FairPool.checkout_in_turn`: no SQLAlchemy `Connection`, no greenlet): an idle one at once;
    with none idle, the one handed over in turn. A connection to be made again (here: invalidated) is checked out
    through SQLAlchemy, which reconnects. The pool holds nothing afterwards either way."""
    import uuid

    from decabill.invoicing.repository import InvoiceRepository
    from decabill.tenancy import reset_tenant, set_tenant

    engine = db.init_engine(pg, pool_size=1, max_overflow=0, pool_timeout=10)
    pool = engine.sync_engine.pool
    direct: list[bool] = []
    checkout_in_turn = type(pool).checkout_in_turn

    async def noting(self):
        connection = await checkout_in_turn(self)
        direct.append(connection is not None)
        return connection

    monkeypatch.setattr(type(pool), "checkout_in_turn", noting)
    units: list[tuple[bool, bool]] = []

    async def summary() -> tuple:
        async with db.read() as unit:
            found = await InvoiceRepository(unit).summary_of_user(uuid.uuid4())
            units.append((unit._pooled is not None, unit._connection is not None))
        return found

    token = set_tenant("default")
    try:
        nothing = (None, None, 0, 0, 0, 0)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))  # the pool's one connection, idle from here on
        assert await summary() == nothing
        assert direct == [True] and units == [(True, False)] and pool.checkedout() == 0

        holder = await engine.connect()
        await holder.execute(text("SELECT 1"))
        waiting = asyncio.create_task(summary())
        await _settled()
        assert not waiting.done() and pool._pool.waiting() == 1  # noqa: SLF001
        await holder.close()
        assert await waiting == nothing
        assert direct[1:] == [True] and units[1:] == [(True, False)] and pool.checkedout() == 0

        async with engine.connect() as conn:
            await conn.invalidate()  # back in the pool without a connection: the next checkout connects
        assert await summary() == nothing
        assert direct[2:] == [False] and units[2:] == [(False, True)] and pool.checkedout() == 0
    finally:
        reset_tenant(token)
    await db.dispose_engine()


async def test_a_hot_read_that_gets_no_connection_in_time_raises_the_pools_timeout(pg):
    """Waiting in turn directly (`FairPool.checkout_in_turn`) ends as SQLAlchemy's checkout does: `PoolTimeout`
    (the API's 503) after DB_POOL_TIMEOUT, nobody left waiting, the connection free for the next read."""
    import uuid

    from decabill.invoicing.repository import InvoiceRepository
    from decabill.tenancy import reset_tenant, set_tenant

    engine = db.init_engine(pg, pool_size=1, max_overflow=0, pool_timeout=0.2)
    token = set_tenant("default")
    try:
        holder = await engine.connect()
        await holder.execute(text("SELECT 1"))
        with pytest.raises(db.PoolTimeout, match="QueuePool limit of size 1 overflow 0 reached"):
            async with db.read() as unit:
                await InvoiceRepository(unit).summary_of_user(uuid.uuid4())
        assert engine.sync_engine.pool._pool.waiting() == 0  # noqa: SLF001
        await holder.close()
        async with db.read() as unit:
            assert (await InvoiceRepository(unit).summary_of_user(uuid.uuid4()))[2] == 0
        assert engine.sync_engine.pool.checkedout() == 0
    finally:
        reset_tenant(token)
    await db.dispose_engine()


async def test_a_statement_marked_for_a_generic_plan_runs_with_it_and_nothing_else_does(pg):
    """`generic_plan(statement)` (the admin search): its driver read runs with `plan_cache_mode =
    force_generic_plan`, and the connection keeps it for the next marked read — one SET for a run of them, no
    RESET after each. Everything else on that pooled connection runs with the database's default: a driver read
    not marked, a Core statement, an ORM transaction, and the Core rerun of a marked read that failed."""
    from sqlalchemy import func, literal, select
    from sqlalchemy.exc import DBAPIError

    from decabill.identity.repository import UserRepository
    from decabill.repository import generic_plan

    engine = db.init_engine(pg, pool_size=1, max_overflow=0, pool_timeout=10)  # one connection for everything
    mode = func.current_setting("plan_cache_mode").label("mode")
    marked, plain = generic_plan(select(mode)), select(mode)
    failing = generic_plan(select(mode, (literal(1) / (literal(0) * func.length(mode))).label("never")))
    settings: list[str] = []  # the SET and RESET statements the connection received

    def log_setting(query) -> None:
        if "plan_cache_mode" in query.query and not query.query.startswith("SELECT"):
            settings.append(query.query)

    async def run(statement) -> str:
        async with db.read() as unit:
            driver = await unit.driver()
            if log_setting not in driver._query_loggers:  # noqa: SLF001 - asyncpg keeps no public list
                driver.add_query_logger(log_setting)
            (row,) = await UserRepository(unit).run(statement)
        return row.mode

    async def core_mode() -> str:
        async with engine.connect() as conn:
            return (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one()

    async def orm_mode() -> str:
        async with db.transaction() as session:
            return (await session.execute(text("SHOW plan_cache_mode"))).scalar_one()

    default = await core_mode()
    assert default != "force_generic_plan"
    assert [await run(marked) for _ in range(3)] == ["force_generic_plan"] * 3
    assert settings == ["SET plan_cache_mode = force_generic_plan"]
    assert await core_mode() == default
    assert await run(marked) == "force_generic_plan"
    assert await orm_mode() == default
    assert await run(marked) == "force_generic_plan"
    assert await run(plain) == default
    assert await run(plain) == default
    assert settings == ["SET plan_cache_mode = force_generic_plan", "RESET plan_cache_mode"] * 3
    with pytest.raises(DBAPIError):
        await run(failing)
    assert await core_mode() == default
    assert engine.sync_engine.pool.checkedout() == 0
    await db.dispose_engine()
