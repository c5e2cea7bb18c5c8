"""EXPLAIN ANALYZE of the hot list queries, built by the repositories themselves, on the benchmark database.

    .venv/bin/python bench/explain.py        # after bench/api.py has seeded decabill_bench_api (BENCH_DATABASE)

Prints each query's plan twice: with the values written into the SQL (the plan PostgreSQL makes for one
execution) and as the generic plan of the statement as the driver reads prepare it (`_DriverStatement`: its
constants written into the SQL; `plan_cache_mode = force_generic_plan`: what a pooled connection runs once
asyncpg's statement has been executed a few times — the tenant, the user and limit/offset are parameters then). `docs/performance.md` quotes them (every list query must use an index).

    .venv/bin/python bench/explain.py --time 200 --only "admin invoices, search"

times each statement instead (µs per run, best of three rounds of `--time` runs after 30 warm-up runs), prepared
through asyncpg as the driver reads run it: the generic plan where the repository marks it (`generic_plan`), else
PostgreSQL's choice. Compare two checkouts by running each in turn, more than once (the host's speed drifts).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")


def _literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


async def main(runs: int, only: str) -> None:
    import models  # noqa: F401
    from decabill.invoicing.repository import InvoiceRepository
    from decabill.repository import _GENERIC_PLANS, TENANT_PARAM, Repository, _DriverStatement
    from decabill.shapes import json_fields
    from decabill.subscriptions.repository import SubscriptionRepository
    from decabill.tenancy import bound_tenant
    from models.identity import User
    from models.subscriptions import Subscription

    database = os.environ.get("BENCH_DATABASE", "decabill_bench_api")
    # without JIT compilation, as the service's connections run (decabill/db.py `init_engine`)
    engine = create_async_engine(f"{PG_URL.replace('postgresql://', 'postgresql+asyncpg://')}/{database}",
                                 connect_args={"server_settings": {"jit": "off"}})
    captured: list[tuple[str, Any, dict[str, Any]]] = []
    results: dict[str, Any] = {}  # what each labelled call returned: a search's total is printed with its time
    label = ""

    async with AsyncSession(engine) as session:
        customer = (await session.execute(select(User.id).where(User.email == "bench-customer@example.com"))).scalar_one()
        subscription = (await session.execute(select(Subscription.id).where(Subscription.user_id == customer).limit(1))).scalar_one()

        # The statements as the repositories run them: `run()` (built once, parameters) and `session.execute`.
        run, execute = Repository.run, session.execute

        async def capture_run(self, statement, **params):
            captured.append((label, statement, {TENANT_PARAM: "default", **params}))
            return await run(self, statement, **params)

        async def capture_execute(statement, *args, **kwargs):
            captured.append((label, statement, {TENANT_PARAM: "default"}))
            return await execute(statement, *args, **kwargs)

        async def as_trigram_match(call):
            """The search as before migration 0027: the number matched with `LIKE '%term%'` (trigram index)."""
            kind = InvoiceRepository.__dict__["search_kind"]  # the staticmethod itself
            InvoiceRepository.search_kind = staticmethod(lambda fragment: None)  # type: ignore[method-assign]
            try:
                return await call()
            finally:
                InvoiceRepository.search_kind = kind  # type: ignore[method-assign]

        Repository.run = capture_run  # type: ignore[method-assign]
        session.execute = capture_execute  # type: ignore[method-assign]
        with bound_tenant("default"):
            invoices = InvoiceRepository(session)

            def first_page(search: str | None) -> Any:
                """The admin list's first page of 20 for `search` over the whole list, as the bench drives it."""
                return invoices.search_page(limit=20, offset=0, search=search, user_id=None, open_only=False)

            for label, call in [
                ("open and overdue invoices of a customer", lambda: invoices.open_of_user_with_number(customer)),
                ("invoices of a subscription, with its ownership check", lambda: invoices.of_own_subscription(customer, subscription)),
                ("invoices summary (one statement)", lambda: invoices.summary_of_user(customer)),
                ("subscriptions of a customer", lambda: SubscriptionRepository(session).of_user(customer, 10, 0)),
                ("admin invoices, page and total", lambda: first_page(None)),
                ("admin invoices, search by an invoice-number prefix (range on ix_invoices_tenant_number_prefix)",
                 lambda: first_page("INV-2026-0001")),
                ("admin invoices, the same prefix as a trigram match (before migration 0027)",
                 lambda: as_trigram_match(lambda: first_page("INV-2026-0001"))),
                ("admin invoices, search (the benchmark's term)", lambda: first_page("Customer 42")),
                ("admin invoices, search matching ~1,100 invoices by email", lambda: first_page("customer42")),
                ("admin invoices, search matching every email (100,000 invoices)", lambda: first_page("example.com")),
                ("admin invoices, search by the prefix of every number (100,000 invoices)", lambda: first_page("inv-")),
                ("admin invoices, search by a hex fragment", lambda: first_page("4a2f")),
                # digits: invoice numbers hold them (a year: about half of the seeded numbers), and ids
                ("admin invoices, search by a year (digits)", lambda: first_page("2026")),
                ("admin invoices, search by a year and digits (dated: a number prefix, 42 numbers)", lambda: first_page("2026-0001")),
                ("admin invoices, search by six digits (digits: 2 numbers)", lambda: first_page("000123")),
                ("admin invoices, search by four digits of numbers (digits)", lambda: first_page("0001")),
                # terms shorter than a trigram: no trigram index can serve them
                ("admin invoices, search by two hex digits (short: a fifth of the ids)", lambda: first_page("ab")),
                ("admin invoices, search by two digits (short, digits)", lambda: first_page("42")),
                ("admin invoices, search by two letters (short: no id holds them)", lambda: first_page("xy")),
                ("admin invoices, search by one character every e-mail holds (short: 100,000 invoices)",
                 lambda: first_page("@")),
                ("admin invoices, search by a hex letter every e-mail holds (short: 100,000 invoices)",
                 lambda: first_page("c")),
                ("admin invoices, search by a letter nothing holds (short: no match)", lambda: first_page("q")),
                ("admin invoices, search by two characters few hold (short: the bench customer's invoices)",
                 lambda: first_page("h-")),
                ("admin invoices, search by a whole id", lambda: first_page(str(customer))),
                ("admin invoices, search by a subscription number (4 invoices)", lambda: first_page("SUB-00000001")),
                ("admin invoices, search by the digits of a subscription number", lambda: first_page("00000001")),
                # the same lists as PostgreSQL writes them as JSON (what `decabill serve` runs on PostgreSQL): the
                # statements above inside one aggregate, their index scans unchanged
                ("admin invoices, page and total, written as JSON",
                 lambda: invoices.search_page_json(limit=20, offset=0, search=None, user_id=None, open_only=False,
                                                   shape=json_fields("AdminInvoiceListItem"))),
                ("admin invoices, search by an invoice-number prefix, written as JSON",
                 lambda: invoices.search_page_json(limit=20, offset=0, search="INV-2026-0001", user_id=None,
                                                   open_only=False, shape=json_fields("AdminInvoiceListItem"))),
                ("open and overdue invoices of a customer, written as JSON",
                 lambda: invoices.open_of_user_json(customer, json_fields("InvoiceResponse"))),
            ]:
                results[label] = await call()
        Repository.run = run  # type: ignore[method-assign]
        session.execute = execute  # type: ignore[method-assign]

        connection = await session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        for number, (label, statement, params) in enumerate(captured):
            if only not in label:
                continue
            run_by_driver = _DriverStatement(statement, engine.dialect)  # the SQL asyncpg runs, constants written
            if runs:
                micros = await _time(driver, run_by_driver, params, runs, bool(_GENERIC_PLANS.get(statement)))
                print(f"{micros:8.0f} µs  {label}{_matches(results.get(label))}")
                continue
            bound = statement.params(**params)
            literal = bound.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
            plan = (await session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING ON) {literal}"))).scalars().all()
            print(f"### {label}\n" + "\n".join(plan) + "\n")

            arguments = ", ".join(_literal(value) for value in run_by_driver._arguments(params))  # noqa: SLF001
            await driver.execute(f"PREPARE q{number} AS {run_by_driver.sql}")
            await driver.execute("SET plan_cache_mode = force_generic_plan")
            rows = await driver.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING ON) EXECUTE q{number}({arguments})")
            await driver.execute("RESET plan_cache_mode")
            print(f"### {label} — generic plan\n" + "\n".join(row[0] for row in rows) + "\n")
    await engine.dispose()


def _matches(result: Any) -> str:
    """`  [N matches]` for what a search returned (its rows and total, and for JSON its list version), else ""."""
    if isinstance(result, tuple) and len(result) >= 2 and isinstance(result[1], int):
        return f"  [{result[1]} matches]"
    return ""


async def _time(driver: Any, run_by_driver: Any, params: dict[str, Any], runs: int, generic: bool) -> float:
    """µs per run of the driver's statement, best of three rounds of `runs` (after 30 warm-up runs)."""
    await driver.execute(f"SET plan_cache_mode = {'force_generic_plan' if generic else 'auto'}")
    try:
        prepared = await driver.prepare(run_by_driver.sql)
        arguments = run_by_driver._arguments(params)  # noqa: SLF001
        for _ in range(30):
            await prepared.fetch(*arguments)
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(runs):
                await prepared.fetch(*arguments)
            best = min(best, (time.perf_counter() - started) / runs * 1e6)
        return best
    finally:
        await driver.execute("RESET plan_cache_mode")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time", type=int, default=0, metavar="RUNS", help="time each statement instead")
    parser.add_argument("--only", default="", help="the statements whose label holds this text")
    args = parser.parse_args()
    asyncio.run(main(args.time, args.only))
