"""WEB_CONCURRENCY: `decabill serve` answers from several HTTP processes on one port, restarts a worker that
dies, and takes them all down on SIGTERM."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.log_lines import events
from tests.processes import DECABILL, free_port

REPO = Path(__file__).resolve().parent.parent


def _children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _http_workers(pid: int) -> set[int]:
    return {child for child in _children(pid) if "--http-fd" in Path(f"/proc/{child}/cmdline").read_text()}


def _wait(condition, what: str, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} within {seconds} s")


def test_several_http_processes_share_the_port_and_a_dead_one_is_replaced(tmp_path):
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
           "AUTHENTICATION_METHOD": "api-key", "STATIC_API_KEY": "w" * 32, "RATE_LIMIT_ENABLED": "false",
           "ENCRYPTION_KEY": base64.b64encode(b"w" * 32).decode(), "NODE_ENV": "test", "SMTP_HOST": "",
           "LOG_LEVEL": "warning", "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "3"}
    base = f"http://127.0.0.1:{port}/api"
    replaced: set[int] = set()
    with (tmp_path / "serve.log").open("wb") as log:
        main = subprocess.Popen([DECABILL, "serve", "--no-socket"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        try:
            workers = _wait(lambda: len(_http_workers(main.pid)) == 2 and _http_workers(main.pid), "two extra HTTP workers")

            def healthy() -> bool:
                try:
                    return httpx.get(f"{base}/health", timeout=2).status_code == 200
                except httpx.TransportError:
                    return False

            _wait(healthy, "the API answers")
            key = {"Authorization": f"Bearer {'w' * 32}"}
            # many short connections: the kernel hands them to every process; all of them answer alike
            for n in range(30):
                created = httpx.post(f"{base}/service-types", headers=key,
                                     json={"key": f"t{n}", "name": f"T{n}", "provider": "manual"}, timeout=30)
                assert created.status_code == 201, created.text
            listed = httpx.get(f"{base}/service-types", headers=key, params={"limit": 100}, timeout=30).json()
            assert len(listed) == 30

            victim = next(iter(workers))
            os.kill(victim, signal.SIGKILL)
            replaced = _wait(lambda: len(_http_workers(main.pid)) == 2 and victim not in _http_workers(main.pid)
                             and _http_workers(main.pid), "the killed worker replaced")
            assert victim not in replaced
            assert all(httpx.get(f"{base}/health", timeout=5).status_code == 200 for _ in range(20))
        finally:
            main.send_signal(signal.SIGTERM)
            main.wait(timeout=60)
    assert main.returncode == 0, (tmp_path / "serve.log").read_text()[-2000:]
    for pid in replaced:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_several_http_processes_with_metrics_need_the_multiprocess_folder(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
           "AUTHENTICATION_METHOD": "api-key", "STATIC_API_KEY": "w" * 32, "ENCRYPTION_KEY": base64.b64encode(b"w" * 32).decode(),
           "HOST": "127.0.0.1", "PORT": str(free_port()), "WEB_CONCURRENCY": "2", "METRICS_PORT": str(free_port())}
    result = subprocess.run([DECABILL, "serve", "--no-socket"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "PROMETHEUS_MULTIPROC_DIR" in result.stderr and "WEB_CONCURRENCY" in result.stderr


def test_the_image_default_serves_one_http_process_per_core_on_uvloop_and_httptools_and_schedules_once(tmp_path):
    """The container's `decabill serve` with the image's WEB_CONCURRENCY: one HTTP process per core, each on uvloop
    with the httptools parser; the Socket.IO gateway and the job scheduler only in the main process (the HTTP
    workers only enqueue), so no periodic job is sent once per process."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'CMD ["serve"]' in dockerfile
    image_default = re.search(r"\bWEB_CONCURRENCY=(\d+)", dockerfile).group(1)
    assert image_default == "0"  # one per core
    port, ws_port = free_port(), free_port()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
           "AUTHENTICATION_METHOD": "api-key", "STATIC_API_KEY": "w" * 32, "RATE_LIMIT_ENABLED": "false",
           "ENCRYPTION_KEY": base64.b64encode(b"w" * 32).decode(), "NODE_ENV": "test", "SMTP_HOST": "",
           "LOG_LEVEL": "info", "HOST": "127.0.0.1", "PORT": str(port), "WEBSOCKET_PORT": str(ws_port),
           "WEB_CONCURRENCY": image_default}
    extra = (os.cpu_count() or 1) - 1
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        main = subprocess.Popen([DECABILL, "serve"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait(lambda: len(_http_workers(main.pid)) == extra, f"{extra} extra HTTP workers")
            workers = _http_workers(main.pid)

            def answering() -> bool:
                try:
                    return (httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
                            and httpx.get(f"http://127.0.0.1:{ws_port}/socket.io/", timeout=2,
                                          params={"EIO": "4", "transport": "polling"}).status_code == 200)
                except httpx.TransportError:
                    return False

            _wait(answering, "the API and the Socket.IO gateway answer")

            def logged(event: str) -> list[dict]:
                return events(log_path.read_text(), event)

            jobs = _wait(lambda: len(logged("jobs.started")) == 1 + extra and logged("jobs.started"),
                         "every process started its job layer")
            for pid in (main.pid, *workers):
                mapped = Path(f"/proc/{pid}/maps").read_text()
                assert "/uvloop/loop." in mapped and "/httptools/parser/" in mapped, f"process {pid}"
            assert sorted((job["role"], job["scheduler"], job["worker"]) for job in jobs) == \
                [("all", True, True)] + [("api", False, False)] * extra
            # the gateway's port is opened by the main process alone
            assert sorted(str(line["websocket_port"]) for line in logged("decabill.starting")) == \
                sorted(["None"] * extra + [str(ws_port)])
            assert all(child in _http_workers(main.pid) for child in workers)  # none of them died meanwhile
        finally:
            main.send_signal(signal.SIGTERM)
            main.wait(timeout=60)
    assert main.returncode == 0, log_path.read_text()[-2000:]
