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


async def test_a_hot_read_leases_its_connection_directly_in_turn_and_checks_out_through_sqlalchemy_to_reconnect(
        pg, monkeypatch):
    """The statements of a `db.read()` on the driver (`Repository.run`) lease their connection from the pool and
    give it back directly (`FairPool.lease_in_turn`: no checked-out SQLAlchemy connection, no `Connection`, no
    greenlet): an idle one at once; with none idle, the one handed over in turn. A connection to be made again (here: invalidated) is checked out
    through SQLAlchemy, which reconnects. The pool holds nothing afterwards either way."""
    import uuid

    from decabill.invoicing.repository import InvoiceRepository
    from decabill.tenancy import reset_tenant, set_tenant

    engine = db.init_engine(pg, pool_size=1, max_overflow=0, pool_timeout=10)
    pool = engine.sync_engine.pool
    direct: list[bool] = []
    lease_in_turn = type(pool).lease_in_turn

    async def noting(self):
        lease = await lease_in_turn(self)
        direct.append(lease is not None)
        return lease

    monkeypatch.setattr(type(pool), "lease_in_turn", noting)
    units: list[tuple[bool, bool]] = []

    async def summary() -> tuple:
        async with db.read() as unit:
            found = await InvoiceRepository(unit).summary_of_user(uuid.uuid4())
            units.append((unit._lease is not None, unit._connection is not None))
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
    """Waiting in turn directly (`FairPool.lease_in_turn`) ends as SQLAlchemy's checkout does: `PoolTimeout`
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


async def test_a_leased_connection_is_counted_as_checked_out_and_given_back_to_the_pool_it_came_from(pg):
    """A hot read's lease (`FairPool.lease_in_turn`) takes its connection out of the pool as a checkout does: the
    pool counts it checked out until the unit ends. Asked for a Core connection afterwards, the unit checks the
    leased connection out as SQLAlchemy's — unless the pool was invalidated meanwhile: then the lease goes back
    and a fresh connection is checked out (with the I/O that needs, in SQLAlchemy's greenlet). A lease that
    outlives its pool (the engine disposed meanwhile) goes back to that pool, not to the engine's new one."""
    from decabill.identity.repository import UserRepository

    engine = db.init_engine(pg, pool_size=2, max_overflow=0, pool_timeout=10)
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))  # one connection open and idle
    pool = engine.sync_engine.pool

    async with db.read() as unit:
        leased = await unit.driver()
        assert unit._lease is not None and pool.checkedout() == 1  # noqa: SLF001
        core = await unit.connection()  # the same connection, now SQLAlchemy's checked-out one
        assert core.sync_connection.connection.driver_connection is leased and unit._lease is None  # noqa: SLF001
        assert pool.checkedout() == 1
        assert await UserRepository(unit).count() == 0
    assert pool.checkedout() == 0

    async with db.read() as unit:
        leased = await unit.driver()
        pool._invalidate(None)  # noqa: SLF001 - what SQLAlchemy does when a statement finds a connection dead
        core = await unit.connection()
        assert core.sync_connection.connection.driver_connection is not leased  # made again, not the stale one
        assert (await core.execute(text("SELECT 1"))).scalar() == 1
    assert pool.checkedout() == 0

    unit_cm = db.read()
    unit = await unit_cm.__aenter__()
    await unit.driver()
    old_pool = pool
    await engine.dispose()  # the engine gets a new, empty pool
    await unit_cm.__aexit__(None, None, None)
    assert engine.sync_engine.pool is not old_pool
    assert old_pool._pool.qsize() == 1  # noqa: SLF001 - back where it came from, as a checked-out one would go
    assert engine.sync_engine.pool.checkedout() == 0
    assert engine.sync_engine.pool._pool.qsize() == 0  # noqa: SLF001 - nothing of the old pool in the new one
    await db.dispose_engine()


async def test_a_lease_given_back_to_a_full_pool_is_closed_as_a_surplus_overflow_connection(pg):
    """Pool of one with one overflow: a hot read leases the idle connection, another unit opens the overflow one
    and returns it, which fills the pool. The lease then comes back surplus: its connection is closed and the
    overflow count drops, as SQLAlchemy's checkin does for a surplus connection — the pool stays at its size."""
    engine = db.init_engine(pg, pool_size=1, max_overflow=1, pool_timeout=10)
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    pool = engine.sync_engine.pool
    async with db.read() as unit:
        leased = await unit.driver()
        async with engine.connect() as overflow:  # nobody idle: the overflow connection is opened
            await overflow.execute(text("SELECT 1"))
            assert pool.checkedout() == 2
        assert pool._pool.qsize() == 1  # noqa: SLF001 - the overflow connection fills the pool
    assert leased.is_closed()
    assert pool.checkedout() == 0 and pool._pool.qsize() == 1 and pool.overflow() == 0  # noqa: SLF001
    async with db.read() as unit:
        assert (await unit.driver()) is not leased  # the pool serves the one it kept
    await db.dispose_engine()
