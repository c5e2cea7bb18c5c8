"""Structured JSON logs on stdout, one object a line; the request middleware binds `request_id`.

One way out: every line — ours and those of the libraries (uvicorn, connexion, alembic, fontTools, ...) — is
rendered to a finished JSON line and written by one `TurnWriter` on stdout, whole lines under the stream's lock,
so lines never interleave (not even when threads log at the same moment). In the event loop the lines of one turn
go out together at the end of that turn (one `write()` and flush instead of one per request: ~4 % of a hot read);
a response written in that turn leaves at the same moment (decabill/web/protocol.py), so a request's line is in
the log driver's hands no later than its answer is in the client's. Outside the loop (start-up, threads,
commands) a line is written at once, after any of the turn's. Our loggers (structlog's) take the
short way: their processors render the line and the writer writes it — no `logging.LogRecord`, no handler, no
formatter on the request path (the request line is written at the end of every request). The libraries' records
come through the standard library's logging to one handler that renders them with the same processors. Our own
loggers log at LOG_LEVEL; the libraries' at WARNING unless LOG_LEVEL=debug (fontTools alone writes dozens of INFO
lines per invoice PDF).

The line is compact JSON (orjson: no spaces after `:` and `,`, UTF-8 rather than `\\u` escapes); read it as JSON
(`jq`, a log pipeline), not as text.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import json
import logging
import sys
import threading
import time
import warnings
from typing import Any

import orjson
import structlog

from decabill.observability import tracing

OWN_LOGGERS = ("decabill", "handlers")
_CONTEXT_PREFIX = structlog.contextvars.STRUCTLOG_KEY_PREFIX


def merge_bound_context(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog's `merge_contextvars`, reading only the context variables that `bind_contextvars` made: it walks
    the whole context (the tenant's, the transaction's, OpenTelemetry's, asyncio's ...) on every line."""
    for name, var in _bound_variables.items():
        value = var.get(Ellipsis)
        if value is not Ellipsis:
            event_dict.setdefault(name[len(_CONTEXT_PREFIX):], value)
    return event_dict


# The variables structlog's `bind_contextvars` creates, by their prefixed name (structlog keeps them in this dict).
_bound_variables: dict[str, contextvars.ContextVar[Any]] = structlog.contextvars._CONTEXT_VARS


class UtcTimestamp:
    """`timestamp`: the time in UTC as ISO 8601 with microseconds and `Z` (`2026-12-06T01:40:27.126367Z`), what
    `TimeStamper(fmt="iso", utc=True)` writes, with the date and time of day formatted once a second."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")  # one attribute: threads replace it whole

    def __call__(self, _logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        second, micros = divmod(time.time_ns() // 1000, 1_000_000)
        cached_second, prefix = self._second
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, prefix)
        event_dict["timestamp"] = f"{prefix}.{micros:06d}Z"
        return event_dict


class TurnWriter:
    """Whole lines to a text stream: in the thread of a running event loop, the lines of the loop's current turn
    written together at its end (`call_soon`); anywhere else at once, after the ones still held. A process that
    exits normally writes what the last configured writer holds (`atexit`, `configure_logging`)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._lock = threading.RLock()  # re-entered by a signal handler that logs while a line is written
        self._held: list[str] = []
        self._flush_loop: asyncio.AbstractEventLoop | None = None  # the loop whose turn's end writes what is held

    def msg(self, message: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._held.append(message)
            if loop is not None:
                # a flush due on another loop (one that stopped before its turn ended) is not waited for
                if self._flush_loop is not loop:
                    self._flush_loop = loop
                    loop.call_soon(self.flush)
                return
        self.flush()

    def flush(self) -> None:
        with self._lock:
            self._flush_loop = None
            if not self._held:
                return
            lines, self._held = self._held, []
            try:
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                # stdout gone (a closed pipe, a closed file): the lines have nowhere to go, and the process keeps
                # serving rather than failing the request or the loop's callback that logged
                pass

    # structlog calls the method named after the level; every level is a line
    log = debug = info = warning = warn = error = critical = exception = fatal = failure = err = msg


_writer: TurnWriter | None = None  # the one `configure_logging` installed last


@atexit.register
def _flush_at_exit() -> None:
    if _writer is not None:
        _writer.flush()


def _unserialisable(value: Any) -> str:
    return repr(value)  # as structlog's JSONRenderer does for what JSON has no type for


def render_json_line(_logger: Any, _method: str, event_dict: dict[str, Any]) -> str:
    """The event as one line of JSON (the writer adds the newline)."""
    try:
        return orjson.dumps(event_dict, default=_unserialisable, option=orjson.OPT_NON_STR_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):
        # What orjson refuses and json writes (integers beyond 64 bits, lone surrogates): never lose the line.
        return json.dumps(event_dict, default=_unserialisable)


class LineHandler(logging.Handler):
    """The libraries' records: rendered by the formatter, written by the same writer as our lines."""

    def __init__(self, writer: TurnWriter):
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.msg(self.format(record))
        except Exception:  # noqa: BLE001 - logging's rule: a failing handler reports and carries on
            self.handleError(record)


def configure_logging(level: str = "info") -> None:
    numeric = logging.getLevelName(level.strip().upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared = [
        structlog.processors.add_log_level,
        UtcTimestamp(),
        tracing.add_trace_ids,  # trace_id / span_id when tracing is on
    ]
    global _writer
    if _writer is not None:
        _writer.flush()  # what the writer being replaced still holds
    writer = _writer = TurnWriter(sys.stdout)
    structlog.configure(
        processors=[merge_bound_context, *shared, structlog.processors.format_exc_info, render_json_line],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda *_args: writer,
        cache_logger_on_first_use=True,
    )
    handler = LineHandler(writer)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info, render_json_line],
            foreign_pre_chain=[merge_bound_context, *shared, structlog.stdlib.add_logger_name,
                               structlog.stdlib.ExtraAdder()],
        )
    )
    root = logging.getLogger()
    for old in root.handlers:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(numeric)
    logging.captureWarnings(True)  # warnings.warn (deprecations) become log records too, not stray stderr text
    # Connexion imports Starlette's test client at start-up, which warns about httpx on every start: a notice
    # for Connexion's maintainers, not for an operator reading the log.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient` is deprecated")
