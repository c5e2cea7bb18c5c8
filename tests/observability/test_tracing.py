"""Tracing: a real `decabill serve` with OTEL_EXPORTER_OTLP_ENDPOINT exports its spans over OTLP/HTTP to a
collector running in the test process; request spans are named by operationId and carry the request id, the
database statements, the provider call, the SMTP delivery and the jobs are spans of their own, and the JSON log
lines written inside a span carry its trace id. Without the variable nothing is exported."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests import conftest
from tests.conftest import Api
from tests.observability.test_metrics_endpoint import server_env  # noqa: F401 - fixture
from tests.log_lines import log_records
from tests.processes import decabill_serve


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict
    service: str


@dataclass
class Collector:
    """An OTLP/HTTP trace receiver (protobuf) on 127.0.0.1."""

    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def app(self) -> Starlette:
        async def traces(request: Request) -> Response:
            export = ExportTraceServiceRequest()
            export.ParseFromString(await request.body())
            with self.lock:
                for resource_spans in export.resource_spans:
                    service = next((a.value.string_value for a in resource_spans.resource.attributes
                                    if a.key == "service.name"), "")
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            self.spans.append(Span(
                                span.name, span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(),
                                {a.key: _value(a.value) for a in span.attributes}, service))
            return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

        return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])

    def named(self, name: str) -> list[Span]:
        with self.lock:
            return [s for s in self.spans if s.name == name]

    def wait_for(self, name: str, timeout: float = 60, where: Callable[[Span], bool] = lambda span: True) -> list[Span]:
        """The spans of that name for which `where` holds, once there is one (spans arrive in batches: the
        server's readiness probes have `getHealth` spans exported before the test's own request)."""
        deadline = time.monotonic() + timeout
        while not (found := [span for span in self.named(name) if where(span)]):
            assert time.monotonic() < deadline, f"no span {name!r}; got {sorted({s.name for s in self.spans})}"
            time.sleep(0.2)
        return found


def _value(value):
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture
def collector():
    receiver = Collector()
    server = uvicorn.Server(uvicorn.Config(receiver.app(), host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.01)
    receiver.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    yield receiver
    server.should_exit = True
    thread.join(5)


async def test_spans_reach_the_collector_and_trace_ids_reach_the_logs(server_env, tmp_path, collector,  # noqa: F811
                                                                      smtp_sink):
    server_env.update(OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, OTEL_BSP_SCHEDULE_DELAY="100",
                      OTEL_SERVICE_NAME="decabill-test")
    conftest.SMTP_SINK = smtp_sink
    log_path = tmp_path / "serve.log"
    with decabill_serve(server_env, tmp_path, log_path, timeout=60) as base:
        async with httpx.AsyncClient(base_url=base.removesuffix("/api"), timeout=60) as client:
            api = Api(client)
            health = await api.get("/health", headers={"X-Correlation-Id": "trace-me-1"})
            assert health.status_code == 200
            admin = await api.admin_token()
            await api.user_token(admin, "traced@example.com")  # a confirmation mail over SMTP
            types = await api.get("/service-types/providers/hetzner/server-types", token=admin)
            assert types.status_code == 200
        [request] = collector.wait_for("getHealth", where=lambda s: s.attributes.get("decabill.request_id") == "trace-me-1")
        collector.wait_for("provider hetzner fetch_server_types")
        collector.wait_for("smtp send")
        jobs = collector.wait_for("job invoicing.bill_due_users")
    assert request.service == "decabill-test"
    assert request.attributes["decabill.operation"] == "getHealth"
    # the database statement of the health check is a child span in the request's trace
    statements = [s for s in collector.spans if s.trace_id == request.trace_id and s.parent_id == request.span_id]
    assert any("SELECT" in str(s.attributes.get("db.statement", s.attributes.get("db.query.text", "")))
               or s.name.startswith("SELECT") for s in statements), [s.name for s in statements]
    [provider] = collector.named("provider hetzner fetch_server_types")
    assert provider.attributes["decabill.provider"] == "hetzner" and "decabill.outcome" not in provider.attributes
    register = collector.wait_for("createUser")  # the admin creates the user: the confirmation mail goes out
    assert register, sorted({s.name for s in collector.spans})
    smtp = collector.named("smtp send")[0]
    assert smtp.trace_id in {s.trace_id for s in register}  # the mail was sent within the request that caused it
    assert jobs[0].attributes["decabill.job"] == "invoicing.bill_due_users"
    # the log line of the traced request carries its trace id
    lines = log_records(log_path.read_text())
    [logged] = [line for line in lines if line.get("event") == "request" and line.get("request_id") == "trace-me-1"]
    assert logged["trace_id"] == request.trace_id


async def test_no_endpoint_no_export(server_env, tmp_path, collector):  # noqa: F811
    log_path = tmp_path / "serve.log"
    with decabill_serve(server_env, tmp_path, log_path, timeout=60) as base:
        assert httpx.get(f"{base}/health", timeout=30).status_code == 200
    assert collector.spans == []
    lines = log_records(log_path.read_text())
    assert all("trace_id" not in line for line in lines)
    assert any(line.get("event") == "decabill.starting" and line.get("tracing") is False for line in lines)
