"""What the operator runs beside the service (a face, like `decabill/web/`): the metrics endpoint and the
gauges it reads at scrape (`server`, `state`), and `decabill doctor` (`doctor`). The instrumentation the code
itself carries — metrics, tracing, observed calls — is `decabill.observability`."""
