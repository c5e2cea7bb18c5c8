"""Structured JSON logs on stdout; the request middleware binds `request_id`.

One writer: structlog's loggers hand their event to the standard library's logging, and a single handler
renders every record — ours and those of the libraries (uvicorn, connexion, alembic, fontTools, ...) — as one
JSON object and writes it with one `write()` under the handler's lock, so lines never interleave, not even when
threads log at the same moment. Our own loggers (`decabill.*`, `handlers.*`) log at LOG_LEVEL; the libraries'
at WARNING unless LOG_LEVEL=debug (fontTools alone writes dozens of INFO lines per invoice PDF).
"""

from __future__ import annotations

import logging
import warnings
import sys

import structlog

from decabill.observability import tracing

OWN_LOGGERS = ("decabill", "handlers")


def configure_logging(level: str = "info") -> None:
    numeric = logging.getLevelName(level.strip().upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        tracing.add_trace_ids,  # trace_id / span_id when tracing is on
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
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
