"""Real `decabill` processes for the tests that need one (the installed console command, a served API)."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.log_lines import logged

DECABILL = str(Path(sys.executable).with_name("decabill"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@dataclass
class Served:
    """A running `decabill serve`: its API's base URL and its process (for /proc readings)."""

    base: str
    process: subprocess.Popen


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, and SIGKILL when it does not stop within 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for(condition, what: str, timeout: float, process: subprocess.Popen | None = None,
              log_path: Path | None = None) -> None:
    """Poll `condition()` until it is true; fails when `timeout` passes or `process` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process exited ({process.returncode}) before {what}: "
                                 f"{log_path.read_text()[-3000:] if log_path else ''}")
        with contextlib.suppress(httpx.TransportError):
            if condition():
                return
        assert time.monotonic() < deadline, f"not {what} within {timeout} s"
        time.sleep(0.1)


@contextlib.contextmanager
def decabill_process(args: list[str], env: dict[str, str], cwd: Path, log_path: Path, *, ready: str,
                     timeout: float = 30) -> Iterator[subprocess.Popen]:
    """A `decabill <args>` process without HTTP (a worker or scheduler role); yields it once its log has a line
    of the event `ready` (e.g. "jobs.started"), stops it with SIGTERM afterwards."""
    with log_path.open("wb") as log:
        process = subprocess.Popen([DECABILL, *args], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: logged(log_path.read_text(), ready), f"ready ({ready})", timeout, process, log_path)
            yield process
        finally:
            stop(process)


@contextlib.contextmanager
def decabill_serve(env: dict[str, str], cwd: Path, log_path: Path, timeout: float = 30) -> Iterator[str]:
    """`decabill serve --no-socket` on a free port of 127.0.0.1; yields the API's base URL once
    /health answers, stops it with SIGTERM afterwards."""
    with decabill_server(env, cwd, log_path, timeout) as served:
        yield served.base


@contextlib.contextmanager
def decabill_server(env: dict[str, str], cwd: Path, log_path: Path, timeout: float = 30) -> Iterator[Served]:
    """`decabill_serve`, yielding the process too."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen([DECABILL, "serve", "--no-socket"], env={**env, "HOST": "127.0.0.1", "PORT": str(port)},
                                   cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}/api"
            wait_for(lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200, "answering /health", timeout,
                     process, log_path)
            yield Served(base, process)
        finally:
            stop(process)
