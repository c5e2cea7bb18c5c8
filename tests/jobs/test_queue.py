"""The job layer's wiring: tasks through the in-process broker, the scheduler role sending coordinators on
their intervals, a worker consuming from Redis, and the roles of `decabill serve`."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from decabill.config import get_settings
from decabill.jobs import queue
from decabill.jobs.runtime import CoordinatorSchedule, JobRuntime, interval_seconds
from decabill.subscriptions import tasks
from models.subscriptions import Subscription
from tests.helpers import drain
from tests.jobs.conftest import load_row, now, positions_of, update_row
from tests.subscriptions.conftest import hetzner_plan, manual_plan, order
from tests.log_lines import log_records, logged
from tests.processes import DECABILL, decabill_process, free_port


async def _due_subscription(cloud, admin, customer) -> dict:
    plan = await manual_plan(cloud, admin, billingIntervalType="day", billingIntervalValue=1, basePrice="24.00")
    subscription = await order(cloud, customer, plan["id"])
    start = now() - dt.timedelta(days=1, minutes=5)
    await update_row(Subscription, subscription["id"], current_period_start=start,
                     current_period_end=start + dt.timedelta(days=1), next_billing_at=start + dt.timedelta(days=1))
    return subscription


async def test_a_coordinator_fans_out_units_through_the_in_process_broker(cloud, admin, customer, fake_cloud):
    fake_cloud.hetzner.capacity[("cx22", "fsn1")] = False
    plan = await hetzner_plan(cloud, admin)
    waiting = await order(cloud, customer, plan["id"], autoBackorder=True)
    fake_cloud.hetzner.capacity.clear()

    broker = queue.get_broker()
    assert queue.is_in_process(broker)
    await tasks.retry_due_backorders.kiq()  # the coordinator, as the scheduler sends it
    await drain(broker)

    assert (await cloud.get(f"/subscriptions/{waiting['id']}", token=customer)).json()["status"] == "active"
    assert len(fake_cloud.hetzner.servers) == 1
    # Nothing is due any more: the next run sends no unit.
    assert await tasks.retry_due_backorders.original_func() == 0


async def test_billing_coordinator_records_each_period_once(cloud, admin, customer):
    subscription = await _due_subscription(cloud, admin, customer)
    broker = queue.get_broker()
    for _ in range(3):  # three scheduler ticks: the period is billed on the first one only
        await tasks.bill_due.kiq()
        await drain(broker)
    positions = await positions_of(subscription["id"])
    assert [(p.kind, str(p.amount)) for p in positions] == [("recurring", "24.0000")]
    assert positions[0].description == f"Subscription {subscription['number']}"
    advanced = await load_row(Subscription, subscription["id"])
    assert advanced.current_period_start == positions[0].period_end
    assert advanced.next_billing_at == positions[0].period_end + dt.timedelta(days=1)


async def test_coordinators_cover_every_configured_tenant(cloud, admin, customer):
    acme_admin = await cloud.admin_token("boss@acme.example", tenant="acme")
    from tests.subscriptions.conftest import complete_profile

    await complete_profile(cloud, acme_admin, tenant="acme")
    acme_plan = await manual_plan(cloud, acme_admin, tenant="acme", billingIntervalType="hour", basePrice="1")
    acme_sub = await order(cloud, acme_admin, acme_plan["id"], tenant="acme")
    await update_row(Subscription, acme_sub["id"], next_billing_at=now() - dt.timedelta(minutes=1),
                     current_period_start=now() - dt.timedelta(hours=1, minutes=1),
                     current_period_end=now() - dt.timedelta(minutes=1))
    default_sub = await _due_subscription(cloud, admin, customer)

    assert await tasks.bill_due.original_func() == 2  # one unit per due subscription, each in its tenant
    await drain(queue.get_broker())
    assert len(await positions_of(acme_sub["id"])) == 1 and len(await positions_of(default_sub["id"])) == 1
    acme_position = (await positions_of(acme_sub["id"]))[0]
    assert acme_position.tenant_id == "acme"


async def test_the_scheduler_role_sends_coordinators_on_their_interval(cloud, admin, customer, env):
    subscription = await _due_subscription(cloud, admin, customer)
    env.update(BILLING_SCHEDULER_INTERVAL="1000")
    runtime = JobRuntime(get_settings(), "all")
    await runtime.start()
    try:
        for _ in range(60):
            if await positions_of(subscription["id"]):
                break
            await asyncio.sleep(0.1)
    finally:
        await runtime.stop()
    assert len(await positions_of(subscription["id"])) == 1


def test_intervals_come_from_the_settings_in_whole_seconds(env):
    env.update(BACKORDER_RETRY_INTERVAL_MS="2500", EXPIRATION_SCHEDULER_INTERVAL="-1", BILLING_SCHEDULER_INTERVAL="abc",
               SUBSCRIPTION_UPDATE_SCHEDULER_INTERVAL="200", ORDER_RECOVERY_INTERVAL_MS="0")
    queue.load_tasks()
    schedules = {s.task_name: s.interval for s in asyncio.run(CoordinatorSchedule(get_settings()).get_schedules())
                 if s.task_name.startswith("subscriptions.")}
    assert schedules == {
        "subscriptions.retry_due_backorders": dt.timedelta(seconds=2),  # 2.5 s, rounded
        "subscriptions.expire_due": dt.timedelta(seconds=60),  # invalid -> default 60000 ms
        "subscriptions.bill_due": dt.timedelta(seconds=60),
        "subscriptions.update_items": dt.timedelta(seconds=1),  # the scheduler's resolution is 1 s
        "subscriptions.recover_stale_orders": dt.timedelta(seconds=60),  # 0 -> default 60000 ms
    }
    assert interval_seconds(86_400_000) == 86_400


# --- Redis (production) --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--dir", str(tmp_path_factory.mktemp("redis"))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


async def test_with_redis_the_api_enqueues_and_a_worker_consumes(cloud, admin, customer, env, redis_url):
    subscription = await _due_subscription(cloud, admin, customer)
    env.update(REDIS_URL=redis_url, REDIS_KEY_PREFIX=f"decabill-test-{os.getpid()}")
    api_side = JobRuntime(get_settings(), "api")
    await api_side.start()
    broker = queue.get_broker()
    assert type(broker).__name__ == "JobStreamBroker"
    try:
        await tasks.bill_period.kiq("default", subscription["id"])  # enqueued only: no worker yet
        await asyncio.sleep(0.3)
        assert await positions_of(subscription["id"]) == []
        worker = JobRuntime(get_settings(), "worker")
        await worker.start()
        try:
            for _ in range(100):
                if await positions_of(subscription["id"]):
                    break
                await asyncio.sleep(0.1)
        finally:
            await worker.stop()
    finally:
        queue.reset_broker()
    assert len(await positions_of(subscription["id"])) == 1


# --- the roles of `decabill serve` ---------------------------------------------------------------------------


def _serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DECABILL_", "STATIC_API", "KEYCLOAK_", "REDIS"))},
        "AUTHENTICATION_METHOD": "users", "JWT_SECRET": "serve-test-secret-0123456789abcdef",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.sqlite3'}", "PORT": str(free_port()),
        "HOST": "127.0.0.1", "SMTP_HOST": "", "LOG_LEVEL": "info", "DECABILL_DATA_DIR": str(tmp_path / "data"),
        **extra,
    }


def test_serve_runs_the_jobs_and_stops_them_on_sigterm(tmp_path):
    log_path = tmp_path / "serve.log"
    # fails after 30 s without a "jobs.started" line, or when the process exits first; SIGTERM on leaving
    with decabill_process(["serve", "--no-socket"], _serve_env(tmp_path), tmp_path, log_path,
                          ready="jobs.started") as process:
        time.sleep(1.5)  # the first scheduler tick
    text = log_path.read_text()
    assert process.returncode == 0, text[-3000:]
    assert logged(text, "jobs.started", role="all")
    assert logged(text, "jobs.stopped") and logged(text, "decabill.stopped")
    assert not [record for record in log_records(text) if record.get("level") == "error"], text[-3000:]


def test_worker_and_scheduler_roles_need_redis(tmp_path):
    for role in ("worker", "scheduler"):
        process = subprocess.Popen([DECABILL, "serve", "--no-socket"], env=_serve_env(tmp_path, QUEUE_ROLE=role),
                                   cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 2
        assert f"QUEUE_ROLE={role} needs Redis" in output
