"""/metrics of a deployment of several processes on Redis: two HTTP processes (WEB_CONCURRENCY=2) report as one
through PROMETHEUS_MULTIPROC_DIR, and the queue gauges read the Redis stream — messages a scheduler sends wait
while no worker runs, and drain once one does."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import redis

from tests.observability.test_metrics_endpoint import scrape, wait_for
from tests.processes import DECABILL, decabill_serve, free_port

REDIS_URL = os.environ.get("DECABILL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def background(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        process = subprocess.Popen([DECABILL, *args], env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_two_http_processes_report_as_one_and_the_queue_gauges_follow_redis(tmp_path):
    prefix = f"decabill-metrics-{uuid.uuid4().hex[:10]}"
    metrics_port = free_port()
    (tmp_path / "multiproc").mkdir()
    key = "m" * 32
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
           "AUTHENTICATION_METHOD": "api-key", "STATIC_API_KEY": key, "RATE_LIMIT_ENABLED": "true",
           "ENCRYPTION_KEY": base64.b64encode(b"q" * 32).decode(), "NODE_ENV": "test", "SMTP_HOST": "",
           "LOG_LEVEL": "warning", "REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": prefix,
           "OPEN_POSITION_INVOICE_SCHEDULER_INTERVAL": "1000"}  # the billing-day coordinator every second
    api_env = {**env, "QUEUE_ROLE": "api", "WEB_CONCURRENCY": "2", "METRICS_PORT": str(metrics_port),
               "METRICS_HOST": "127.0.0.1", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "multiproc")}
    client = redis.Redis.from_url(REDIS_URL)
    try:
        with decabill_serve(api_env, tmp_path, tmp_path / "api.log", timeout=60) as base:
            def health_count(current) -> float:
                return current.value("decabill_http_requests_total", operation="getHealth", status_class="2xx")

            before = health_count(scrape(metrics_port))  # decabill_serve polled /health until it answered
            # fresh connections: the kernel spreads them over both HTTP processes
            for _ in range(40):
                assert httpx.get(f"{base}/health", timeout=10).status_code == 200
            counted = wait_for(metrics_port, lambda s: health_count(s) >= before + 40, "40 requests counted")
            assert health_count(counted) == before + 40
            processes = {labels for (name, labels) in counted.samples if name == "decabill_process_resident_memory_bytes"}
            assert len(processes) >= 2, f"one RSS series per live process expected: {processes}"

            # a scheduler sends coordinators into Redis; no worker takes them yet
            with background(["serve", "--no-socket"], {**env, "QUEUE_ROLE": "scheduler"}, tmp_path / "scheduler.log"):
                waiting = wait_for(metrics_port, lambda s: s.value("decabill_queue_messages", state="waiting") >= 2,
                                   "coordinators waiting in the Redis stream")
                assert waiting.value("decabill_queue_oldest_message_age_seconds") > 0
                with background(["worker"], {**env, "QUEUE_ROLE": "worker"}, tmp_path / "worker.log"):
                    drained = wait_for(metrics_port, lambda s: s.value("decabill_queue_messages", state="waiting") == 0
                                       and s.value("decabill_queue_messages", state="in_flight") == 0,
                                       "the worker drained the stream")
                    assert drained.value("decabill_queue_oldest_message_age_seconds") == 0
    finally:
        for name in client.scan_iter(f"{prefix}*"):
            client.delete(name)
        client.close()
