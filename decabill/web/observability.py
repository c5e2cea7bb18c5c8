"""Request metrics and the request span's name, as one ASGI middleware around the whole app.

It sits outside every other middleware (refusals of the request-context middleware — 400 tenant, 403
origin, 405, 429 — are counted too). Connexion's routing writes the operationId into
`scope["extensions"]["connexion_routing"]` of the scope it was given, whose `extensions` dict is shared
with ours (a shallow copy), so it is known once the response starts; requests that match no operation
(404, the docs) are counted as `unmatched`. The request id is read from the response's X-Correlation-Id
header, which the request-context middleware sets.
"""

from __future__ import annotations

import time

from connexion.middleware import MiddlewarePosition
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from decabill.observability import metrics, tracing

UNMATCHED = "unmatched"


def operation_of(scope: Scope) -> str:
    routing = (scope.get("extensions") or {}).get("connexion_routing") or {}
    operation = routing.get("operation_id")
    return operation.rpartition(".")[2] if isinstance(operation, str) and operation else UNMATCHED


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, traced: bool = True) -> None:
        self.app = app
        # Without the request span (tracing off) there is nothing to name: no span looked up per request.
        self.traced = traced
        # The labelled counter and histogram per (operation, status class): `labels()` validates the values
        # and takes the metric's lock at every call (~1 % of a read); the set of keys is bounded.
        self._series: dict[tuple[str, str], tuple] = {}

    def _series_of(self, labels: tuple[str, str]) -> tuple:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = (metrics.HTTP_REQUESTS.labels(*labels),
                                             metrics.HTTP_DURATION.labels(*labels))
        return series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("extensions", {})
        span = trace.get_current_span() if self.traced else None  # the ASGI instrumentation's server span
        started = time.perf_counter()
        status = {"code": 500}

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                if span is not None and span.is_recording():
                    operation = operation_of(scope)
                    if operation != UNMATCHED:
                        span.update_name(operation)
                    span.set_attribute("decabill.operation", operation)
                    for name, value in message.get("headers") or ():
                        if name.lower() == b"x-correlation-id":
                            span.set_attribute("decabill.request_id", value.decode("latin-1"))
            await send(message)

        metrics.HTTP_IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, observe)
        finally:
            metrics.HTTP_IN_PROGRESS.dec()
            requests, duration = self._series_of((operation_of(scope), metrics.status_class(status["code"])))
            requests.inc()
            duration.observe(time.perf_counter() - started)


def install(app) -> None:
    """Add the request span (when tracing is on) and the request metrics around everything else of a
    Connexion app; call before adding the other middlewares (the first added is the outermost)."""
    instrumentation = tracing.asgi_middleware()
    if instrumentation is not None:
        middleware, options = instrumentation
        app.add_middleware(middleware, position=MiddlewarePosition.BEFORE_EXCEPTION, **options)
    app.add_middleware(RequestMetricsMiddleware, position=MiddlewarePosition.BEFORE_EXCEPTION,
                       traced=instrumentation is not None)
