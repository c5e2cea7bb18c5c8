"""Structured JSON logs on stdout, one object a line; the request middleware binds `request_id`.

One way out: every line — ours and those of the libraries (uvicorn, connexion, alembic, fontTools, ...) — is
rendered to a finished JSON line and written by one `structlog.WriteLogger` on stdout: one `write()` and a flush
under the stream's lock, so lines never interleave (not even when threads log at the same moment) and a line
written is a line the log driver has, whatever happens to the process next. Our loggers (structlog's) take the
short way: their processors render the line and the writer writes it — no `logging.LogRecord`, no handler, no
formatter on the request path (the request line is written at the end of every request). The libraries' records
come through the standard library's logging to one handler that renders them with the same processors. Our own
loggers log at LOG_LEVEL; the libraries' at WARNING unless LOG_LEVEL=debug (fontTools alone writes dozens of INFO
lines per invoice PDF).

The line is compact JSON (orjson: no spaces after `:` and `,`, UTF-8 rather than `\\u` escapes); read it as JSON
(`jq`, a log pipeline), not as text.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
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

    def __init__(self, writer: structlog.WriteLogger):
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
    stream = sys.stdout
    structlog.configure(
        processors=[merge_bound_context, *shared, structlog.processors.format_exc_info, render_json_line],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    handler = LineHandler(structlog.WriteLogger(stream))
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
