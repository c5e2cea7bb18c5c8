"""The production shape (issue #15), as an operator runs it: the real `decabill` processes against the
machine's PostgreSQL and Redis (its own database and key prefix), in the role `all` and as separate `api` +
`scheduler` + `worker` processes, rate limiting on and off. A customer is billed through the worker: the
scheduler records the due period, an admin's bill-now is consumed from the Redis stream, the invoice is issued
and its mail reaches the SMTP sink."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from decimal import Decimal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

import tests.conftest as fixtures
from decabill import db
from models.subscriptions import Subscription
from tests.conftest import BASE_ENV, _create_pg_database, _drop_pg_database
from tests.invoicing.conftest import ISSUER, user_id
from tests.log_lines import json_lines
from tests.processes import decabill_process, decabill_serve
from tests.subscriptions.conftest import complete_profile, manual_plan, order

REDIS = "redis://127.0.0.1:6379/0"
WORKER_READY = "jobs.started"


@pytest.fixture
async def database_url() -> Iterator[str]:
    name, url = await _create_pg_database()
    try:
        yield url
    finally:
        await db.dispose_engine()
        await _drop_pg_database(name)


@pytest.fixture
def key_prefix() -> Iterator[str]:
    prefix = f"decabill-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def production_env(database_url: str, key_prefix: str, smtp_port: int, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **BASE_ENV, **ISSUER,
        "DECABILL_VALIDATE_RESPONSES": "false", "NODE_ENV": "production", "LOG_LEVEL": "info",
        "DATABASE_URL": database_url, "REDIS_URL": REDIS, "REDIS_KEY_PREFIX": key_prefix,
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port), "DECABILL_DATA_DIR": str(tmp_path / "data"),
        "BILLING_INVOICE_PDF_STORAGE_PATH": str(tmp_path / "invoices"), "BILLING_SCHEDULER_INTERVAL": "1000",
        **extra,
    }


@contextlib.contextmanager
def deployment(roles: str, env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """`all`: one `decabill serve`; `split`: an `api`, a `scheduler` and a `worker` process."""
    if roles == "all":
        with decabill_serve(env, tmp_path, tmp_path / "all.log", timeout=60) as base:
            yield base
        return
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(decabill_serve({**env, "QUEUE_ROLE": "api"}, tmp_path, tmp_path / "api.log", 60))
        for role in ("scheduler", "worker"):
            stack.enter_context(decabill_process(["serve", "--no-socket"], {**env, "QUEUE_ROLE": role}, tmp_path,
                                                 tmp_path / f"{role}.log", ready=WORKER_READY, timeout=60))
        yield base


async def make_due(database_url: str, subscription_id: str) -> None:
    """The subscription's first period ended a minute ago: the scheduler's next tick records it."""
    db.init_engine(database_url)
    try:
        start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1, minutes=1)
        async with db.transaction() as session:
            row = await session.get(Subscription, uuid.UUID(subscription_id))
            row.current_period_start, row.current_period_end = start, start + dt.timedelta(days=1)
            row.next_billing_at = start + dt.timedelta(days=1)
    finally:
        await db.dispose_engine()


@pytest.mark.parametrize("rate_limit", ["true", "false"])
@pytest.mark.parametrize("roles", ["all", "split"])
async def test_the_processes_start_with_redis_and_bill_a_customer_through_the_worker(
        roles, rate_limit, database_url, key_prefix, smtp_sink, tmp_path):
    fixtures.SMTP_SINK = smtp_sink  # Api.user_token reads the confirmation code from the sink
    smtp_sink.clear()
    env = production_env(database_url, key_prefix, smtp_sink.port, tmp_path, RATE_LIMIT_ENABLED=rate_limit,
                         RATE_LIMIT_LIMIT="1000")
    with deployment(roles, env, tmp_path) as base:
        async with httpx.AsyncClient(base_url=base.removesuffix("/api"), timeout=60) as client:
            api = fixtures.Api(client)
            ready = (await api.get("/health/ready")).json()
            assert ready["redis"] == "ok" and ready["database"] == "ok", ready
            admin = await api.admin_token()
            customer = await api.user_token(admin, "ada@example.com")
            await complete_profile(api, customer, email="ada@example.com")
            plan = await manual_plan(api, admin, basePrice="30.00", billingIntervalType="day", billingIntervalValue=1)
            subscription = await order(api, customer, plan["id"])
            await make_due(database_url, subscription["id"])

            async def unbilled() -> int:
                return (await api.get("/admin/billing/summary", token=admin)).json()["unbilledTotal"]

            # the scheduler sends subscriptions.bill_due, a worker records the period as an open position
            for _ in range(600):
                if await unbilled() > 0:
                    break
                await asyncio.sleep(0.1)
            assert await unbilled() == 30

            queued = (await api.post("/admin/billing/bill-now", token=admin, json={})).json()
            assert queued["userCount"] == 1
            invoices: list[dict] = []
            for _ in range(600):
                invoices = (await api.get("/admin/billing/invoices", token=admin)).json()["items"]
                if invoices and smtp_sink.to("ada@example.com")[1:]:
                    break
                await asyncio.sleep(0.1)
    [invoice] = invoices
    assert invoice["status"] == "issued" and invoice["userId"] == str(user_id(customer))
    assert Decimal(str(invoice["balance"])) == Decimal("35.70")  # 30.00 + 19 % VAT, unpaid
    [mail] = [m for m in smtp_sink.to("ada@example.com") if invoice["invoiceNumber"] in str(m["Subject"])]
    assert any(part.get_filename() for part in mail.iter_attachments())
    lines = [line for path in tmp_path.glob("*.log") for line in json_lines(path.read_text())]
    assert not [line for line in lines if line["level"] in ("error", "critical")], lines[-20:]
    assert not [line for line in lines if line.get("logger", "").startswith("fontTools")]  # the PDF was quiet



PG_SOCKET_FOLDER = Path("/var/run/postgresql")  # where the machine's PostgreSQL keeps its Unix socket


@pytest.mark.skipif(not (PG_SOCKET_FOLDER / ".s.PGSQL.5432").exists(), reason="no PostgreSQL Unix socket here")
async def test_postgresql_on_the_same_machine_through_its_unix_socket(database_url, key_prefix, smtp_sink, tmp_path):
    """DB_HOST naming the socket folder: the server migrates, answers and reads with no TCP connection to
    PostgreSQL (each query saves the loopback TCP path: docs/performance.md)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    fixtures.SMTP_SINK = smtp_sink
    name = make_url(database_url).database
    env = production_env(database_url, key_prefix, smtp_sink.port, tmp_path)
    del env["DATABASE_URL"]
    env.update(DB_HOST=str(PG_SOCKET_FOLDER), DB_PORT="5432", DB_USERNAME="postgres", DB_DATABASE=name)
    with deployment("all", env, tmp_path) as base:
        async with httpx.AsyncClient(base_url=base.removesuffix("/api"), timeout=60) as client:
            api = fixtures.Api(client)
            assert (await api.get("/health/ready")).json()["database"] == "ok"
            admin = await api.admin_token()
            plan = await manual_plan(api, admin, basePrice="30.00")
            offered = (await api.get(f"/service-plans/{plan['id']}", token=admin)).json()
            assert Decimal(str(offered["basePrice"])) == Decimal("30") and offered["id"] == plan["id"]
            assert (await api.get("/admin/billing/invoices?limit=20", token=admin)).json()["total"] == 0
            watcher = await asyncpg.connect(make_url(database_url).set(drivername="postgresql")
                                            .render_as_string(hide_password=False))
            try:
                backends = await watcher.fetch(
                    "SELECT client_addr, client_port FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                    name)
            finally:
                await watcher.close()
    assert backends, "the server holds no connection to its database"
    assert all(row["client_addr"] is None and row["client_port"] == -1 for row in backends), backends  # Unix socket
