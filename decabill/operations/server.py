"""The /metrics listener: its own port (METRICS_PORT, on METRICS_HOST), in every process role, off when
METRICS_PORT is unset or 0. Not under /api: worker and scheduler processes serve no API but have
metrics, and the port can stay inside the cluster network without a token.

A scrape first refreshes the gauges read from the database and the queue (`state.refresh`), then answers
the Prometheus text format of this process — or, in multi-process mode (PROMETHEUS_MULTIPROC_DIR), of
every process writing to that folder. Then several processes of one host may share one METRICS_PORT: the
first to start binds it and serves everyone's samples; the others find the port taken and go on without
a listener. Without that folder a taken port stops start-up (exit code 2), as any wrong setting does.
"""

from __future__ import annotations

import errno
import socket

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from decabill.config import ConfigurationError, Settings
from decabill.observability import metrics
from decabill.operations import state

log = structlog.get_logger("decabill.metrics")

PATH = "/metrics"


def metrics_app(settings: Settings) -> Starlette:
    async def scrape(_request: Request) -> Response:
        await state.refresh(settings)
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    return Starlette(routes=[Route(PATH, scrape, methods=["GET"])])


def bind(settings: Settings) -> socket.socket | None:
    """The listening socket of METRICS_HOST:METRICS_PORT; None when metrics are off or, in multi-process
    mode, another process of this host serves them."""
    if not settings.metrics_port:
        return None
    host, port = settings.metrics_host, settings.metrics_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE and metrics.multiprocess_dir():
            log.info("metrics.served_by_another_process", port=port, folder=metrics.multiprocess_dir())
            return None
        raise ConfigurationError(
            f"METRICS_PORT {port} on METRICS_HOST {host} cannot be used ({exc.strerror}): give each process its own "
            "METRICS_PORT, or set PROMETHEUS_MULTIPROC_DIR so that one process serves the metrics of all") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def config(settings: Settings) -> uvicorn.Config:
    """uvicorn's configuration of the listener; serve it on the socket of `bind()`."""
    return uvicorn.Config(metrics_app(settings), log_config=None, access_log=False, lifespan="off")
