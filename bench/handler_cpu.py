"""CPU per call of the authenticated hot reads' handlers, in-process, on a database bench/api.py has seeded: from
"the handler is called" to "the handler returns its data" (the service, the read unit, the statement on asyncpg,
the row conversions, the views and the shaping) — without the HTTP server, the middlewares and wrk sharing the
two cores, so a change inside the handler shows as µs, not as req/s in the noise of a shared machine.

    .venv/bin/python -m bench.handler_cpu --database decabill_bench_<you> [--calls 1500]

Each handler is called `--calls` times in a row (after 200 warm-up calls), three times; printed is the best of the
three as CPU time of this process per call (`time.process_time`: asyncpg's decoding in the event loop included,
PostgreSQL's own work not) and the wall time per call. The principals are made directly (token verification is
the cached `authenticate` at the end: what a request with a recently verified token pays)."""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("AUTHENTICATION_METHOD", "users")
os.environ.setdefault("JWT_SECRET", "b" * 64)  # bench/api.py's
os.environ.setdefault("LOG_LEVEL", "warning")

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")


async def main(database: str, calls: int) -> None:
    import asyncpg

    import models  # noqa: F401
    from bench.api import ADMIN_EMAIL, CUSTOMER_EMAIL
    from decabill import db
    from decabill.identity.auth import authenticate
    from decabill.identity.credentials import issue_token
    from decabill.identity.principal import Principal
    from decabill.tenancy import set_tenant
    from handlers import admin_billing, invoices, subscriptions

    db.init_engine(f"{PG_URL.replace('postgresql://', 'postgresql+asyncpg://')}/{database}")
    set_tenant("default")
    connection = await asyncpg.connect(f"{PG_URL}/{database}")
    try:
        customer = await connection.fetchrow("SELECT * FROM users WHERE email = $1", CUSTOMER_EMAIL)
        admin = await connection.fetchrow("SELECT * FROM users WHERE email = $1", ADMIN_EMAIL)
        subscription = await connection.fetchval(  # the one bench/api.py drives: the customer's newest
            "SELECT id FROM subscriptions WHERE user_id = $1 ORDER BY created_at DESC, id LIMIT 1", customer["id"])
    finally:
        await connection.close()

    def principal(user: asyncpg.Record) -> dict:
        return {"principal": Principal(tenant="default", role=user["role"], method="users", user_id=user["id"],
                                       email=user["email"])}

    as_customer, as_admin = principal(customer), principal(admin)
    token = issue_token(customer["id"], customer["email"], customer["role"], "default", customer["credential_version"])
    handlers = {
        "invoices of a subscription": lambda: invoices.list_invoices(str(subscription), token_info=as_customer),
        "open and overdue invoices": lambda: invoices.list_open_overdue_invoices(token_info=as_customer),
        "invoices summary": lambda: invoices.get_invoices_summary(token_info=as_customer),
        "subscriptions (customer)": lambda: subscriptions.list_subscriptions(token_info=as_customer),
        "admin invoices": lambda: admin_billing.list_admin_invoices(token_info=as_admin, limit=20),
        "admin invoices search number": lambda: admin_billing.list_admin_invoices(token_info=as_admin, limit=20,
                                                                                  search="INV-2026-0001"),
        "authenticate (verified < 1 s ago)": lambda: authenticate(f"Bearer {token}"),
    }
    print(f"{'handler':36} {'CPU µs/call':>12} {'wall µs/call':>13}")
    for name, call in handlers.items():
        for _ in range(200):
            await call()
        runs = []
        for _ in range(3):
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(calls):
                await call()
            runs.append(((time.process_time() - cpu) / calls * 1e6, (time.perf_counter() - wall) / calls * 1e6))
        print(f"{name:36} {min(r[0] for r in runs):12.1f} {min(r[1] for r in runs):13.1f}")
    await db.dispose_engine()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "decabill_bench_api"))
    parser.add_argument("--calls", type=int, default=1500)
    args = parser.parse_args()
    import uvloop

    uvloop.run(main(args.database, args.calls))
