"""What an operator sees of a running Decabill: Prometheus metrics, OpenTelemetry traces, readiness.

* `metrics` — every metric, declared once (names, labels, buckets); label values are bounded sets
  (operationIds of the spec, task names, provider / processor ids, fixed outcome words), never an id.
* `calls` — `external_call(...)` and `instrument_methods(...)`: one place that counts, times and traces a
  call to the outside world (provisioning providers, payment processors, SMTP).
* `http` — the ASGI middleware that counts and times requests by operationId and status class and names
  the request's span after its operationId.
* `jobs` — a taskiq middleware: job runs, failures, retries and duration, a span per job, the job ledger.
* `state` — gauges read from the database and the queue when /metrics is scraped (billing day progress,
  mails pending or failed, queue depth, ...), and per-process samples (pool in use, RSS).
* `server` — the /metrics listener on METRICS_PORT (multi-process mode with PROMETHEUS_MULTIPROC_DIR).
* `tracing` — OpenTelemetry, on only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
* `doctor` — `decabill doctor`: the configuration and every dependency it names, checked one by one.

This package imports no domain at import time except where a module says so (`state`, `doctor`), so the
domains can import `calls` and `metrics` without an import circle.
"""
