"""One writer for every log line (issue #15): on stdout each line is one JSON object — ours and the libraries',
under concurrent requests too — and the libraries log at WARNING unless LOG_LEVEL=debug."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.processes import decabill_serve


def json_lines(text: str) -> list[dict]:
    """Every line parsed; fails naming the first line that is not exactly one JSON object."""
    parsed = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise AssertionError(f"line {number} is not one JSON object ({exc}): {line[:300]!r}") from None
        assert isinstance(value, dict), line
        parsed.append(value)
    return parsed


def test_every_stdout_line_is_one_json_object_under_concurrent_requests(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LOG_LEVEL": "debug",  # libraries write too
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'logs.sqlite3'}", "AUTHENTICATION_METHOD": "users",
        "JWT_SECRET": "logs-test-jwt-secret-0123456789", "PASSWORD_HASH_ROUNDS": "4", "SMTP_HOST": "",
        "ENCRYPTION_KEY": base64.b64encode(b"l" * 32).decode(), "RATE_LIMIT_ENABLED": "false",
    }
    log_path = tmp_path / "serve.log"

    async def traffic(base: str) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60,
                                     limits=httpx.Limits(max_connections=40)) as client:
            async def one(index: int) -> int:
                if index % 3 == 0:
                    response = await client.post("/auth/register", json={"email": f"u{index}@example.com",
                                                                         "password": "correct-horse-1"})
                elif index % 3 == 1:
                    response = await client.get("/service-types")
                else:
                    response = await client.get("/health")
                return response.status_code
            statuses = await asyncio.gather(*(one(i) for i in range(300)))
        assert set(statuses) <= {200, 201, 401}, statuses

    with decabill_serve(env, tmp_path, log_path, timeout=60) as base:
        asyncio.run(traffic(base))
    lines = json_lines(log_path.read_text())
    requests = [line for line in lines if line.get("event") == "request"]
    assert len(requests) >= 300
    assert {line.get("logger") for line in lines} - {None} > {"uvicorn.error"}  # library lines went the same way


def run_logging(level: str, tmp_path: Path) -> list[dict]:
    script = (
        "import logging, structlog\n"
        "from decabill.logging import configure_logging\n"
        f"configure_logging({level!r})\n"
        "logging.getLogger('fontTools.subset').info('font subset')\n"
        "logging.getLogger('fontTools.ttLib').warning('font warning')\n"
        "structlog.get_logger('decabill.invoicing').info('ours')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json_lines(result.stdout)


def test_libraries_log_at_warning_unless_log_level_is_debug(tmp_path):
    info = run_logging("info", tmp_path)
    assert [(line["event"], line["level"]) for line in info] == [("font warning", "warning"), ("ours", "info")]
    debug = run_logging("debug", tmp_path)
    assert [line["event"] for line in debug] == ["font subset", "font warning", "ours"]
    assert debug[0]["logger"] == "fontTools.subset"
