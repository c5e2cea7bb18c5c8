"""EXPLAIN ANALYZE of the hot list queries, built by the repositories themselves, on the benchmark database.

    .venv/bin/python bench/explain.py        # after bench/api.py has seeded decabill_bench_api (BENCH_DATABASE)

Prints each query's plan; `docs/performance.md` quotes them (every list query must use an index).
"""

from __future__ import annotations

import asyncio
import os

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")


async def main() -> None:
    import models  # noqa: F401
    from decabill.identity.repository import UserRepository
    from decabill.invoicing.repository import InvoiceRepository
    from decabill.repository import read_together
    from decabill.subscriptions.repository import OpenPositionRepository, SubscriptionRepository
    from decabill.usage.repository import UsageRecordRepository
    from decabill.tenancy import bound_tenant
    from models.identity import User
    from models.subscriptions import Subscription

    database = os.environ.get("BENCH_DATABASE", "decabill_bench_api")
    engine = create_async_engine(f"{PG_URL.replace('postgresql://', 'postgresql+asyncpg://')}/{database}")
    captured: list[tuple[str, object]] = []

    async with AsyncSession(engine) as session:
        customer = (await session.execute(select(User.id).where(User.email == "bench-customer@example.com"))).scalar_one()
        subscription = (await session.execute(select(Subscription.id).where(Subscription.user_id == customer).limit(1))).scalar_one()

        original = session.execute

        async def capture(statement, *args, **kwargs):
            captured.append((label, statement))
            return await original(statement, *args, **kwargs)

        session.execute = capture  # type: ignore[method-assign]
        with bound_tenant("default"):
            invoices, users = InvoiceRepository(session), UserRepository(session)
            for label, call in [
                ("open and overdue invoices of a customer", lambda: invoices.open_of_user_with_number(customer)),
                ("invoices of a subscription", lambda: invoices.of_user_and_subscription(customer, subscription)),
                ("summary (one statement, as decabill.invoicing.service.get_summary reads it)", lambda: read_together(
                    session, users.value_query(customer, User.billing_day_of_month),
                    users.value_query(customer, User.created_at), invoices.open_count_query(user_id=customer),
                    invoices.open_total_query(user_id=customer),
                    OpenPositionRepository(session).unbilled_total_query(user_id=customer),
                    UsageRecordRepository(session).unbilled_total_query(user_id=customer))),
                ("subscriptions of a customer", lambda: SubscriptionRepository(session).of_user(customer, 10, 0)),
                ("admin invoices, page", lambda: invoices.search_page(limit=20, offset=0, search=None, user_id=None, open_only=False)),
                ("admin invoices, search", lambda: invoices.search_page(limit=20, offset=0, search="INV-2026-0001", user_id=None, open_only=False)),
            ]:
                await call()
        session.execute = original  # type: ignore[method-assign]
        for label, statement in captured:
            compiled = statement.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
            plan = (await session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING ON) {compiled}"))).scalars().all()
            print(f"### {label}\n" + "\n".join(plan) + "\n")
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
