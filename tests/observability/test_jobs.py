"""The job ledger and `decabill jobs`: a unit that fails is kept with its error and counted (runs, failures,
retries), `decabill jobs` shows it with the last run of every periodic job, and `decabill jobs retry-failed`
runs it again once the cause is fixed. On SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from sqlalchemy import select

from decabill import db
from decabill.jobs import ledger, queue
from decabill.observability import metrics
from models.invoicing import Invoice
from models.jobs import JobRunStatus, JobUnitRun
from tests.helpers import drain
from tests.invoicing.conftest import ISSUER, complete_profile, manual_plan, order, user_id
from tests.processes import DECABILL


@pytest.fixture(autouse=True)
def fresh_broker():
    queue.reset_broker()
    yield
    queue.reset_broker()


def counter(metric, *labels: str) -> float:
    return metric.labels(*labels)._value.get()


async def _run(unit, *args: str) -> None:
    await queue.enqueue(unit, *args)
    await drain()  # the unit and whatever it sends


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([DECABILL, "jobs", *args], env=env, capture_output=True, text=True, timeout=300)


async def test_a_failing_unit_is_kept_counted_shown_and_retried(env, make_api, database, tmp_path):
    from decabill.invoicing import tasks

    env.update(**{name: None for name in ISSUER}, BILLING_INVOICE_PDF_STORAGE_PATH=str(tmp_path / "invoices"))
    api = await make_api()
    admin = await api.admin_token()
    plan = await manual_plan(api, admin, basePrice="30.00")
    token = await api.user_token(admin, "due@example.com")
    await complete_profile(api, token, email="due@example.com")
    subscription = await order(api, token, plan["id"])
    recorded = await api.post("/usage/record", token=token, json={
        "subscriptionId": subscription["id"], "periodStart": "2026-01-01T00:00:00Z",
        "periodEnd": "2026-01-31T00:00:00Z", "usagePayload": {"units": 2, "unitPrice": "5.00"}})
    assert recorded.status_code == 200, recorded.text
    customer = str(user_id(token))
    failed_before = counter(metrics.JOB_RUNS, "invoicing.bill_user", "failed")
    retries_before = counter(metrics.JOB_RETRIES, "invoicing.bill_user")

    # no issuer configured: billing the customer fails, twice; the second run is a retry
    await _run(tasks.bill_user, "default", customer)
    await _run(tasks.bill_user, "default", customer)
    assert counter(metrics.JOB_RUNS, "invoicing.bill_user", "failed") == failed_before + 2
    assert counter(metrics.JOB_RETRIES, "invoicing.bill_user") == retries_before + 1
    [unit] = await ledger.units(JobRunStatus.FAILED)
    assert (unit.task_name, unit.args["args"], unit.attempts) == ("invoicing.bill_user", ["default", customer], 2)
    assert unit.error_type == "IssuerNotConfigured" and "BILLING_ISSUER_NAME" in unit.error
    assert await ledger.failed_units_of("invoicing.bill_user") == 1

    # a coordinator's run is recorded by name
    await _run(tasks.mark_due_overdue)
    [periodic] = [run for run in await ledger.periodic_runs() if run.task_name == "invoicing.mark_due_overdue"]
    assert periodic.status == JobRunStatus.SUCCEEDED and periodic.last_success_at is not None
    assert periodic.units_sent == 0

    # `decabill jobs` shows the failed unit and the periodic jobs
    process_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": database,
                   "AUTHENTICATION_METHOD": "users", "JWT_SECRET": "x" * 32, "NODE_ENV": "test",
                   "ENCRYPTION_KEY": env_value("ENCRYPTION_KEY"), "SMTP_HOST": "",
                   "BILLING_INVOICE_PDF_STORAGE_PATH": str(tmp_path / "invoices")}
    shown = cli(env=process_env)
    assert shown.returncode == 0, shown.stderr
    assert "queue: in-process" in shown.stdout
    assert "running units: 0" in shown.stdout and "failed units: 1" in shown.stdout
    failed_line = next(line for line in shown.stdout.splitlines() if line.strip().startswith("invoicing.bill_user"))
    assert customer in failed_line and "failed 2x" in failed_line and "IssuerNotConfigured" in failed_line
    assert "invoicing.mark_due_overdue  every 86400 s  last run" in shown.stdout
    assert "subscriptions.expire_due  every 60 s  never ran" in shown.stdout

    # retry-failed while the cause is still there: it fails again, exit code 1
    again = cli("retry-failed", env=process_env)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "1 failed again" in again.stdout
    assert (await ledger.units(JobRunStatus.FAILED))[0].attempts == 3

    # fixed: the retry runs (in this process: no Redis) and succeeds; the ledger forgets the unit
    fixed = cli("retry-failed", env={**process_env, **ISSUER})
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "sent 1 failed unit(s) again" in fixed.stdout and "1 succeeded, 0 failed again" in fixed.stdout
    assert await ledger.units(JobRunStatus.FAILED) == []
    async with db.transaction() as session:
        invoices = (await session.execute(select(Invoice).where(Invoice.user_id == uuid.UUID(customer)))).scalars()
        assert [invoice.origin for invoice in invoices] == ["billing_run"]
        assert (await session.execute(select(JobUnitRun))).scalars().all() == []
    assert cli("retry-failed", env=process_env).stdout.strip() == "no failed units"


def env_value(name: str) -> str:
    import os

    return os.environ[name]


async def test_a_unit_left_running_by_a_killed_process_of_this_host_stops_counting_as_running(database):
    """The render jobs wait while a billing unit runs (`invoicing.rendering.after_issuing`); a unit whose
    process was killed stays recorded `running`. One of this host whose process is gone must not hold them back
    (a restart after a crash waited two minutes for the unit to age); one of this process, or of another host,
    still counts."""
    import socket
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    now = db.utcnow()

    async def recorded_by(worker: str) -> bool:
        async with db.transaction() as session:
            await session.execute(JobUnitRun.__table__.delete())
            session.add(JobUnitRun(task_name="invoicing.bill_users", args_key=uuid.uuid4().hex, args={},
                                   status=JobRunStatus.RUNNING, worker=worker, started_at=now))
        return await ledger.running_since(["invoicing.bill_users"], now)

    assert await recorded_by(ledger.worker_name())
    assert await recorded_by(f"another-host.example:{gone.pid}")
    assert not await recorded_by(f"{socket.gethostname()}:{gone.pid}")
    assert not await ledger.running_since(["invoicing.bill_slice"], now)
