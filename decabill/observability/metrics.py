"""Every Prometheus metric of Decabill, declared once.

Labels take values from bounded sets only: operationIds of spec/openapi.yaml (`unmatched` for anything
else), status classes (`2xx` ...), task names, provider and payment processor ids, invoice origins, mail
kinds and statuses, and fixed outcome words. Never a tenant, user, invoice or other entity id.

Multi-process mode: when PROMETHEUS_MULTIPROC_DIR is set (before the process starts; prometheus-client
reads it at import), every process writes its samples to files in that folder and whichever process
serves /metrics reports all of them. Counters and histograms add up over processes; the gauges say how:
`livesum` (in-flight requests, pool in use), `liveall` (RSS, one series per live process) and
`mostrecent` for the values read from the database and the queue (the same for every process).
"""

from __future__ import annotations

import os

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

# `_created` series double every counter's output for no use on a dashboard.
prometheus_client.disable_created_metrics()

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0)

# --- requests ---------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter("decabill_http_requests", "HTTP requests answered, by operationId and status class",
                        ["operation", "status_class"])
HTTP_DURATION = Histogram("decabill_http_request_duration_seconds",
                          "Time from receiving a request to the end of its response",
                          ["operation", "status_class"], buckets=REQUEST_BUCKETS)
HTTP_IN_PROGRESS = Gauge("decabill_http_requests_in_progress", "Requests being answered now",
                         multiprocess_mode="livesum")
ADMIN_PAGE_CACHE = Counter("decabill_admin_invoice_page_cache",
                           "Admin invoice pages on PostgreSQL: answered from the page the process kept (hit), read "
                           "again because the list changed since (stale) or because none was kept (miss)",
                           ["outcome"])

# --- jobs and the queue -----------------------------------------------------------------------------
JOB_RUNS = Counter("decabill_job_runs", "Job executions (units and periodic coordinators) by outcome",
                   ["job", "outcome"])
JOB_RETRIES = Counter("decabill_job_retries",
                      "Unit executions that repeat a unit whose previous run failed or was interrupted", ["job"])
JOB_DURATION = Histogram("decabill_job_duration_seconds", "Job execution time", ["job"], buckets=JOB_BUCKETS)
JOB_UNITS = Gauge("decabill_job_units", "Units in the job ledger: running now, or failed at their last run",
                  ["state"], multiprocess_mode="mostrecent")
PERIODIC_LAST_SUCCESS = Gauge("decabill_periodic_job_last_success_timestamp_seconds",
                              "When each periodic coordinator last finished without error (Unix time)",
                              ["job"], multiprocess_mode="mostrecent")
QUEUE_MESSAGES = Gauge("decabill_queue_messages",
                       "Job messages waiting to be taken by a worker (waiting) or taken and not finished (in_flight)",
                       ["state"], multiprocess_mode="mostrecent")
QUEUE_OLDEST_AGE = Gauge("decabill_queue_oldest_message_age_seconds",
                         "Age of the oldest job message not finished yet (0 when the queue is empty)",
                         multiprocess_mode="mostrecent")

# --- billing ----------------------------------------------------------------------------------------
BILLING_DAY_CUSTOMERS = Gauge(
    "decabill_billing_day_customers",
    "Today's billing day (UTC): customers still due, invoiced by the billing run today, whose billing unit failed",
    ["state"], multiprocess_mode="mostrecent")
INVOICES_ISSUED = Counter("decabill_invoices_issued", "Invoices issued (committed), by origin", ["origin"])
PDF_RENDERS = Counter("decabill_pdf_renders", "Invoice and credit note PDFs rendered, by outcome",
                      ["document", "outcome"])
PDF_RENDER_DURATION = Histogram("decabill_pdf_render_duration_seconds", "Time to render one PDF", ["document"],
                                buckets=CALL_BUCKETS)
MAIL_DELIVERIES = Gauge("decabill_mail_deliveries", "Billing mails not sent yet (pending, sending) or given up (failed)",
                        ["kind", "status"], multiprocess_mode="mostrecent")
WEBHOOK_DELIVERIES = Gauge("decabill_webhook_deliveries",
                           "Outbound webhook deliveries waiting for an attempt (pending) or given up (failed)",
                           ["status"], multiprocess_mode="mostrecent")
MAIL_OLDEST_PENDING_AGE = Gauge("decabill_mail_oldest_pending_age_seconds",
                                "Age of the oldest billing mail still pending (0 when none)",
                                multiprocess_mode="mostrecent")

# --- calls to the outside world ---------------------------------------------------------------------
SMTP_SENDS = Counter("decabill_smtp_sends", "Mails handed to the SMTP server, by outcome", ["outcome"])
SMTP_DURATION = Histogram("decabill_smtp_send_duration_seconds", "Time of one SMTP delivery", buckets=CALL_BUCKETS)
PROVIDER_CALLS = Counter("decabill_provider_calls", "Provisioning provider API operations, by outcome",
                         ["provider", "operation", "outcome"])
PROVIDER_DURATION = Histogram("decabill_provider_call_duration_seconds", "Provisioning provider API operation time",
                              ["provider", "operation"], buckets=CALL_BUCKETS)
PAYMENT_CALLS = Counter("decabill_payment_calls",
                        "Payment processor API operations (Stripe: processor=\"stripe\"), by outcome",
                        ["processor", "operation", "outcome"])
PAYMENT_DURATION = Histogram("decabill_payment_call_duration_seconds", "Payment processor API operation time",
                             ["processor", "operation"], buckets=CALL_BUCKETS)

# --- the process ------------------------------------------------------------------------------------
DB_POOL = Gauge("decabill_db_pool_connections", "Database connections of this process: in_use (checked out), open",
                ["state"], multiprocess_mode="livesum")
PROCESS_RSS = Gauge("decabill_process_resident_memory_bytes", "Resident memory of the process",
                    multiprocess_mode="liveall")
GC_FROZEN_OBJECTS = Gauge("decabill_gc_frozen_objects",
                          "Objects loaded at start-up that the garbage collector no longer scans (decabill/collector.py)",
                          multiprocess_mode="liveall")
STATE_ERRORS = Counter("decabill_metrics_state_errors",
                       "Scrapes whose reading of a source failed (the gauges of that source keep their last value)",
                       ["source"])


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition() -> bytes:
    """The Prometheus text format of this process, or of every process of the folder in multi-process mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(prometheus_client.REGISTRY)


def mark_process_dead(pid: int) -> None:
    """Drop a stopped process's live gauges (multi-process mode); its counters stay in the totals."""
    if multiprocess_dir():
        _multiprocess.mark_process_dead(pid)


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"
