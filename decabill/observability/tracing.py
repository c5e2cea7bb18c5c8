"""OpenTelemetry tracing: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.

When on, each process exports its spans over OTLP/HTTP (protobuf) to that endpoint (`/v1/traces` is
appended, as the OpenTelemetry specification says; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES and OTEL_TRACES_SAMPLER work as
the SDK documents them). Spans:

* one per request (the official ASGI instrumentation), renamed to the request's operationId and carrying
  its request id (`decabill.request_id`) — `decabill.observability.http`;
* one per job, a child of the request or coordinator that enqueued it (the trace context travels in the
  message's labels) — `decabill.observability.jobs`;
* one per database statement (the official SQLAlchemy instrumentation; statements without values);
* one per provider, payment processor (Stripe) and SMTP call — `decabill.observability.calls`.

`add_trace_ids` puts `trace_id` and `span_id` into every JSON log line written inside a span.
When tracing is off, the OpenTelemetry API hands out non-recording spans and nothing is exported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

_provider: Any = None  # the SDK TracerProvider once configured
tracer = trace.get_tracer("decabill")


def enabled() -> bool:
    return _provider is not None


def configure(endpoint: str | None, role: str) -> bool:
    """Install the SDK with an OTLP/HTTP exporter when `endpoint` is set (once per process)."""
    global _provider
    if not endpoint or _provider is not None:
        return _provider is not None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or "decabill",
                                "decabill.role": role})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads the OTEL_EXPORTER_OTLP_* variables
    trace.set_tracer_provider(provider)
    _provider = provider
    return True


def shutdown() -> None:
    """Export what is buffered (called when the process stops)."""
    if _provider is not None:
        _provider.shutdown()


def instrument_engine(engine: Any) -> None:
    """Spans for the statements of `engine` (an AsyncEngine) when tracing is on."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:  # a new engine replaces the previous one
        instrumentor.uninstrument()
    # skip_dep_check: the instrumentation declares SQLAlchemy < 2.1 but only uses the engine events, which 2.1
    # keeps (tests/observability/test_tracing.py checks the statement spans).
    instrumentor.instrument(engine=engine.sync_engine, tracer_provider=_provider, skip_dep_check=True)


def asgi_middleware() -> tuple[type, dict[str, Any]] | None:
    """The official ASGI instrumentation (class and options) that opens each request's server span, or None."""
    if _provider is None:
        return None
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware, {"tracer_provider": _provider, "exclude_spans": ["receive", "send"]}


@contextmanager
def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, attributes: dict[str, Any] | None = None
         ) -> Iterator[Span]:
    """A span around the block; an exception marks it as an error and propagates."""
    with tracer.start_as_current_span(name, kind=kind, attributes=attributes or {},
                                      record_exception=True, set_status_on_exception=True) as current:
        yield current


def mark_error(current: Span, error: BaseException) -> None:
    current.set_status(Status(StatusCode.ERROR, type(error).__name__))


# --- context across the queue -----------------------------------------------------------------------


def inject_context(carrier: MutableMapping[str, Any]) -> None:
    """Write the current trace context (W3C `traceparent`) into a job message's labels."""
    if _provider is not None:
        inject(carrier)


def start_detached_span(name: str, carrier: MutableMapping[str, Any], attributes: dict[str, Any]) -> tuple[Span, object]:
    """Start a span continuing the trace found in `carrier` and make it current; `end_detached_span` ends it.
    For hooks that begin and end in different callbacks (the taskiq middleware)."""
    parent = extract(carrier) if _provider is not None else None
    current = tracer.start_span(name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes)
    token = otel_context.attach(trace.set_span_in_context(current))
    return current, token


def end_detached_span(current: Span, token: object, error: BaseException | None) -> None:
    if error is not None:
        current.record_exception(error)
        mark_error(current, error)
    current.end()
    try:
        otel_context.detach(token)  # type: ignore[arg-type]
    except ValueError:  # ended in another context than it began: nothing to restore there
        pass


# --- logs ---------------------------------------------------------------------------------------------


def add_trace_ids(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the current span's trace and span ids (hex, as exporters show them)."""
    if _provider is None:
        return event_dict
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict
