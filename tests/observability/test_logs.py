"""One writer for every log line (issue #15): on stdout each line is one JSON object — ours and the libraries',
under concurrent requests too — and the libraries log at WARNING unless LOG_LEVEL=debug."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import httpx
import structlog

from decabill.logging import merge_bound_context
from tests.log_lines import json_lines
from tests.processes import decabill_serve


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


def run_logging(level: str, tmp_path: Path, lines: str) -> list[dict]:
    """The JSON lines a process writes that configures logging at `level` as `decabill` does, then runs `lines`."""
    script = (
        "import logging, structlog\n"
        "from decabill.logging import configure_logging\n"
        f"configure_logging({level!r})\n"
        f"{lines}"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    return json_lines(result.stdout.decode("utf-8"))


LIBRARIES_AND_OURS = (
    "logging.getLogger('fontTools.subset').info('font subset')\n"
    "logging.getLogger('fontTools.ttLib').warning('font warning')\n"
    "structlog.get_logger('decabill.invoicing').info('ours')\n"
)


def test_libraries_log_at_warning_unless_log_level_is_debug(tmp_path):
    info = run_logging("info", tmp_path, LIBRARIES_AND_OURS)
    assert [(line["event"], line["level"]) for line in info] == [("font warning", "warning"), ("ours", "info")]
    debug = run_logging("debug", tmp_path, LIBRARIES_AND_OURS)
    assert [line["event"] for line in debug] == ["font subset", "font warning", "ours"]
    assert debug[0]["logger"] == "fontTools.subset"


def test_a_line_carries_its_fields_the_request_context_non_ascii_and_an_exception(tmp_path):
    before = dt.datetime.now(dt.UTC)
    request, failed, odd, big, library = run_logging("info", tmp_path, (
        "log = structlog.get_logger('decabill.http')\n"
        "structlog.contextvars.bind_contextvars(request_id='req-1', method='GET', path='/api/invoices')\n"
        "log.info('request', status=200, client='127.0.0.1', duration_ms=1.5, customer='Zoë Ñúñez 東京 \"q\"')\n"
        "structlog.contextvars.clear_contextvars()\n"
        "log.debug('below LOG_LEVEL')\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    log.exception('invoicing.failed', invoice='INV-1')\n"
        "import decimal, uuid\n"
        "log.warning('odd values', amount=decimal.Decimal('1.50'), ids={1: uuid.UUID(int=1)})\n"
        "log.info('big', big=2 ** 70)\n"
        "logging.getLogger('uvicorn.error').error('Invalid HTTP request: %s', 'é')\n"
    ))
    after = dt.datetime.now(dt.UTC)
    timestamp = request.pop("timestamp")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", timestamp), timestamp
    assert before <= dt.datetime.fromisoformat(timestamp) <= after
    assert request == {"event": "request", "level": "info", "request_id": "req-1", "method": "GET",
                       "path": "/api/invoices", "status": 200, "client": "127.0.0.1", "duration_ms": 1.5,
                       "customer": 'Zoë Ñúñez 東京 "q"'}
    assert failed["event"] == "invoicing.failed" and failed["level"] == "error" and failed["invoice"] == "INV-1"
    assert "request_id" not in failed and "logger" not in failed  # the context was cleared; ours carry no logger
    assert failed["exception"].startswith("Traceback (most recent call last):")
    assert failed["exception"].endswith("ZeroDivisionError: division by zero")
    # what JSON has no type for is written as its repr, as structlog's JSON renderer did; integers beyond 64 bits
    # (orjson refuses them) stay exact
    assert odd["level"] == "warning" and odd["amount"] == "Decimal('1.50')"
    assert odd["ids"] == {"1": "00000000-0000-0000-0000-000000000001"}
    assert big["event"] == "big" and big["big"] == 2 ** 70
    assert library["event"] == "Invalid HTTP request: é" and library["logger"] == "uvicorn.error"
    assert library["level"] == "error" and re.fullmatch(r"\S+T\S+\.\d{6}Z", library["timestamp"])


def test_the_bound_context_is_merged_as_structlogs_merge_contextvars_does():
    def both() -> tuple[dict, dict]:
        return (merge_bound_context(None, "info", {"event": "e", "path": "given"}),
                structlog.contextvars.merge_contextvars(None, "info", {"event": "e", "path": "given"}))

    def in_a_context() -> None:
        assert both()[0] == both()[1] == {"event": "e", "path": "given"}  # nothing bound
        structlog.contextvars.bind_contextvars(request_id="r-1", path="/bound", tenant_note=None)
        ours, structlogs = both()
        assert ours == structlogs == {"event": "e", "path": "given", "request_id": "r-1", "tenant_note": None}
        structlog.contextvars.unbind_contextvars("tenant_note")
        assert both()[0] == both()[1] == {"event": "e", "path": "given", "request_id": "r-1"}
        structlog.contextvars.clear_contextvars()
        assert both()[0] == both()[1] == {"event": "e", "path": "given"}

    contextvars.copy_context().run(in_a_context)


class _CountingStream:
    """A text stream that records each write (and each flush) as it comes."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        self.flushes += 1


def test_the_lines_of_one_loop_turn_go_out_together_at_its_end_and_others_at_once():
    """`TurnWriter`: in the event loop, the lines logged in one turn are written by one write (and one flush) at
    the end of that turn — nothing before it; outside a loop and from another thread a line is written at once,
    after the lines still held, so the order of the lines is the order they were logged in. A loop that stops
    with lines held strands none: the next line, in another loop or none, writes them first."""
    import threading

    from decabill.logging import TurnWriter

    stream = _CountingStream()
    writer = TurnWriter(stream)
    writer.info("start-up")  # no loop: at once
    assert stream.writes == ["start-up\n"]

    async def requests() -> list[str]:
        seen = []
        for n in range(3):
            writer.info(f"request {n}")
        seen.append(len(stream.writes))  # nothing written during the turn
        await asyncio.sleep(0)  # the turn ends
        seen.append(len(stream.writes))
        writer.info("held")
        thread = threading.Thread(target=writer.info, args=("from a thread",))
        thread.start()
        thread.join()  # written at once, after the line held before it
        writer.info("last of the loop")
        return seen

    assert asyncio.run(requests()) == [1, 2]
    assert stream.writes[1] == "request 0\nrequest 1\nrequest 2\n"
    assert stream.writes[2] == "held\nfrom a thread\n"
    assert stream.flushes == len(stream.writes)

    async def stops_with_a_line_held() -> None:
        writer.info("held when the loop stopped")
        asyncio.get_running_loop().stop()  # its turn is cut short

    loop = asyncio.new_event_loop()
    loop.create_task(stops_with_a_line_held())
    loop.run_forever()
    written_before = len(stream.writes)

    async def next_loop() -> None:
        writer.info("in the next loop")
        await asyncio.sleep(0)

    asyncio.run(next_loop())
    loop.close()
    assert "".join(stream.writes[written_before:]).splitlines()[-2:] == ["held when the loop stopped",
                                                                          "in the next loop"]
    assert "".join(stream.writes).splitlines() == [
        "start-up", "request 0", "request 1", "request 2", "held", "from a thread", "last of the loop",
        "held when the loop stopped", "in the next loop"]


def test_a_stream_that_cannot_be_written_drops_the_lines_and_keeps_the_process_going():
    """stdout gone (a closed pipe or file): `TurnWriter` drops the lines it cannot write instead of raising into
    the code that logged (a request, the loop's callback), and writes again once the stream takes lines."""
    from decabill.logging import TurnWriter

    class Broken(_CountingStream):
        broken = True

        def write(self, text: str) -> int:
            if self.broken:
                raise BrokenPipeError(32, "Broken pipe")
            return super().write(text)

    stream = Broken()
    writer = TurnWriter(stream)
    writer.info("lost")  # no loop: written at once, which fails quietly

    async def in_the_loop() -> None:
        writer.info("lost too")
        await asyncio.sleep(0)  # the turn's write fails inside the loop's callback

    asyncio.run(in_the_loop())
    stream.broken = False
    writer.info("written")
    assert stream.writes == ["written\n"]
