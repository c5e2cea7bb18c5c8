"""The billing day in real processes on PostgreSQL (issue #19), at a size that fits the suite: CUSTOMERS
customers with POSITIONS open positions each (and usage for every tenth), seeded as the benchmark seeds
them (bench/billing_day.py), billed by `decabill bill-day` —

* two processes at once → one invoice per customer, every position and usage record billed once, numbers
  gapless from 1, one render-then-mail task per invoice;
* one process killed with SIGKILL mid-run, then run again → the same, nothing lost, nothing doubled; the
  run again renders every PDF no live process works on; only the killed process's claims are left, and a
  restart after their timeout renders them.

PostgreSQL only: two processes billing one SQLite file is not a supported deployment."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest

from bench.billing_day import seed
from decabill import db
from decabill.invoicing import billing_day, rendering
from decabill.migrations import migrate
from decabill.tenancy import bound_tenant
from tests.conftest import BASE_ENV, _create_pg_database, _drop_pg_database
from tests.processes import DECABILL

CUSTOMERS = 500
POSITIONS = 3


@pytest.fixture
async def seeded(tmp_path) -> tuple[str, dict[str, str]]:
    """A fresh PostgreSQL database with the seeded customers, and the environment of a `decabill` process."""
    name, url = await _create_pg_database()
    try:
        await migrate(url)
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        await seed(dsn, CUSTOMERS, POSITIONS, dt.datetime.now(dt.timezone.utc))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "SMTP_"))},
               **BASE_ENV, "DATABASE_URL": url, "SMTP_HOST": "", "DECABILL_DATA_DIR": str(tmp_path),
               "LOG_LEVEL": "warning", "QUEUE_WORKER_CONCURRENCY": "4",
               "BILLING_ISSUER_NAME": "Test Hosting GmbH", "BILLING_ISSUER_VAT_ID": "DE123456789",
               "BILLING_ISSUER_ADDRESS_LINE1": "Hauptstraße 1", "BILLING_ISSUER_POSTAL_CODE": "10115",
               "BILLING_ISSUER_CITY": "Berlin"}
        yield dsn, env
    finally:
        await _drop_pg_database(name)


def bill_day(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen([DECABILL, "bill-day", "--tenant", "default"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)


async def assert_billed_exactly_once(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        per_user = await conn.fetch("SELECT user_id, count(*) AS n FROM invoices GROUP BY user_id")
        assert len(per_user) == CUSTOMERS and {row["n"] for row in per_user} == {1}
        numbers = [row["invoice_number"] for row in await conn.fetch(
            "SELECT invoice_number FROM invoices ORDER BY invoice_number")]
        year = dt.datetime.now(dt.timezone.utc).year
        assert numbers == [f"INV-{year}-{n:05d}" for n in range(1, CUSTOMERS + 1)]  # gapless, none twice
        assert await conn.fetchval("SELECT count(*) FROM open_positions WHERE invoice_id IS NULL") == 0
        assert await conn.fetchval("SELECT count(*) FROM usage_records WHERE invoice_id IS NULL") == 0
        assert await conn.fetchval("SELECT count(*) FROM invoice_lines") == (
            CUSTOMERS * POSITIONS + await conn.fetchval("SELECT count(*) FROM usage_records"))
        # every position is billed by its own customer's invoice
        assert await conn.fetchval("SELECT count(*) FROM open_positions p JOIN invoices i ON i.id = p.invoice_id"
                                   " WHERE i.user_id <> p.user_id") == 0
        assert await conn.fetchval("SELECT count(DISTINCT invoice_id) FROM invoice_documents") == CUSTOMERS
    finally:
        await conn.close()


async def issued(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM invoices WHERE invoice_number IS NOT NULL")
    finally:
        await conn.close()


async def wait(process: subprocess.Popen, log: Path, timeout: float = 900) -> int:
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        await asyncio.sleep(0.5)
    return process.returncode


async def test_two_processes_bill_every_customer_once_with_gapless_numbers(seeded, tmp_path):
    dsn, env = seeded
    log = tmp_path / "bill-day.log"
    first, second = bill_day(env, log), bill_day(env, log)
    assert await wait(first, log) == 0, log.read_text()[-3000:]
    assert await wait(second, log) == 0, log.read_text()[-3000:]
    await assert_billed_exactly_once(dsn)
    summaries = [line for line in log.read_text().splitlines() if line.startswith("tenant default:")]
    assert len(summaries) == 2 and all("0 failed" in line for line in summaries)
    conn = await asyncpg.connect(dsn)
    try:  # every PDF made before the processes ended: their own, and what the other left
        assert await conn.fetchval("SELECT count(*) FROM invoice_documents WHERE status = 'rendered'") == CUSTOMERS
    finally:
        await conn.close()


async def test_killed_mid_run_then_run_again_loses_and_doubles_nothing(seeded, tmp_path, monkeypatch):
    dsn, env = seeded
    log = tmp_path / "bill-day.log"
    victim = bill_day(env, log)
    deadline = time.monotonic() + 600
    while await issued(dsn) < CUSTOMERS // 5:
        assert victim.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        await asyncio.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = dt.datetime.now(dt.timezone.utc)
    assert 0 < await issued(dsn) < CUSTOMERS  # really killed mid-run

    again = bill_day(env, log)
    assert await wait(again, log) == 0, log.read_text()[-3000:]
    await assert_billed_exactly_once(dsn)

    # The run again made every PDF no live process works on — its own, and the killed process's left pending;
    # only the killed process's claims remain (`rendering`, until CLAIM_TIMEOUT), and a restart after that
    # finishes them.
    conn = await asyncpg.connect(dsn)
    try:
        left = dict(await conn.fetch("SELECT status, count(*) FROM invoice_documents WHERE status <> 'rendered'"
                                     " GROUP BY status"))
        assert await conn.fetchval("SELECT count(*) FROM invoice_documents WHERE status = 'rendering'"
                                   " AND claimed_at > $1", killed_at) == 0  # the killed process's claims
    finally:
        await conn.close()
    assert set(left) <= {"rendering"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from decabill.config import get_settings

    get_settings.cache_clear()
    db.init_engine(env["DATABASE_URL"])
    try:
        later = db.utcnow() + rendering.CLAIM_TIMEOUT + dt.timedelta(minutes=1)
        monkeypatch.setattr(db, "utcnow", lambda: later)
        assert await billing_day.finish_documents("default") == left.get("rendering", 0)
        with bound_tenant("default"):
            assert await rendering.unfinished() == 0
    finally:
        await db.dispose_engine()
        get_settings.cache_clear()
