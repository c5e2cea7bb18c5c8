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
            deadline = time.monotonic() + timeout
            while True:
                assert process.poll() is None, f"decabill serve exited: {log_path.read_text()[-2000:]}"
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline, f"decabill serve did not answer within {timeout} s"
                time.sleep(0.1)
            yield Served(base, process)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
