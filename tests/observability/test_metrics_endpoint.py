"""/metrics of a real `decabill serve` process (METRICS_PORT), scraped after real requests, a billing day run by
the scheduler, a provider call the fake refuses, a Stripe call that succeeds and one that fails, and an invoice
mail the SMTP server refuses: the counters and gauges move as they should, and no label carries an id."""

from __future__ import annotations

from decabill.invoicing.billing import ID_SLICES

import base64
import contextlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import conftest
from tests.conftest import Api
from tests.invoicing.conftest import ISSUER
from tests.processes import decabill_serve, free_port
from tests.subscriptions.conftest import complete_profile, manual_plan, order

CUSTOMER = "metrics-customer@example.com"
BOUNCING = "bounces@example.com"  # the customer's invoice address, refused by the SMTP server
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                        for family in text_string_to_metric_families(text) for s in family.samples}

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def names(self) -> set[str]:
        return {name for name, _labels in self.samples}


def scrape(port: int) -> Scrape:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def wait_for(port: int, condition, what: str, timeout: float = 90) -> Scrape:
    """Scrape until `condition(scrape)` holds (the scheduler runs on its own clock)."""
    deadline = time.monotonic() + timeout
    while True:
        current = scrape(port)
        if condition(current):
            return current
        assert time.monotonic() < deadline, f"{what} did not happen; last scrape:\n{current.text[-3000:]}"
        time.sleep(0.5)


@pytest.fixture
def server_env(tmp_path, fake_cloud, smtp_sink) -> dict[str, str]:
    fake_cloud.reset()
    smtp_sink.clear()
    return {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'metrics.sqlite3'}",
        "AUTHENTICATION_METHOD": "users", "JWT_SECRET": conftest.JWT_SECRET, "PASSWORD_HASH_ROUNDS": "4",
        "ENCRYPTION_KEY": base64.b64encode(b"m" * 32).decode(), "NODE_ENV": "test",
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_sink.port),
        "HETZNER_API_TOKEN": fake_cloud.hetzner_token, "HETZNER_API_URL": fake_cloud.hetzner_url,
        "PROVIDER_MAX_RETRIES": "0",
        "STRIPE_SECRET_KEY": fake_cloud.stripe_key, "STRIPE_API_BASE": fake_cloud.stripe_url,
        "STRIPE_MAX_NETWORK_RETRIES": "0", "STRIPE_WEBHOOK_SECRET": "whsec_metrics",
        "BILLING_FRONTEND_URL": "http://127.0.0.1:9/console",
        "BILLING_INVOICE_PDF_STORAGE_PATH": str(tmp_path / "invoices"),
        "OPEN_POSITION_INVOICE_SCHEDULER_INTERVAL": "1000",  # the billing-day coordinator every second
        "METRICS_PORT": str(free_port()), "METRICS_HOST": "127.0.0.1",
        **ISSUER,
    }


@contextlib.contextmanager
def served(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with decabill_serve(env, tmp_path, tmp_path / "serve.log", timeout=60) as base:
        yield base


async def test_metrics_follow_requests_billing_provider_stripe_and_mail(server_env, tmp_path, fake_cloud, smtp_sink):
    metrics_port = int(server_env["METRICS_PORT"])
    conftest.SMTP_SINK = smtp_sink  # Api.user_token reads confirmation codes from it
    with served(server_env, tmp_path) as base:
        before = scrape(metrics_port)
        assert before.value("decabill_invoices_issued_total", origin="billing_run") == 0
        async with httpx.AsyncClient(base_url=base.removesuffix("/api"), timeout=60) as client:
            api = Api(client)
            # plain requests: a success, a refusal by the security layer, a path that is no operation
            assert (await api.get("/health")).status_code == 200
            assert (await api.get("/users")).status_code == 401
            assert (await api.get("/no-such-thing")).status_code == 404
            # a customer whose invoice mails bounce records usage with a cost: due on today's billing day
            admin = await api.admin_token()
            plan = await manual_plan(api, admin, basePrice="30.00")
            token = await api.user_token(admin, CUSTOMER)
            await complete_profile(api, token, email=BOUNCING)
            smtp_sink.refuse(BOUNCING)
            subscription = await order(api, token, plan["id"])
            recorded = await api.post("/usage/record", token=token, json={
                "subscriptionId": subscription["id"], "periodStart": "2026-01-01T00:00:00Z",
                "periodEnd": "2026-01-31T00:00:00Z", "usagePayload": {"units": 3, "unitPrice": "1.25"}})
            assert recorded.status_code == 200, recorded.text

            # the scheduler bills the customer: an invoice, its PDF rendered for the mail, the mail refused
            after_billing = wait_for(metrics_port, lambda s: s.value("decabill_smtp_sends_total", outcome="failed") >= 1,
                                     "the billing day's invoice mail")
            invoices = (await api.get(f"/invoices/{subscription['id']}", token=token)).json()
            assert len(invoices) == 1, invoices

            # a provider call the fake refuses, a Stripe call that works and one that fails
            fake_cloud.hetzner.fail_next("unauthorized", 401, "unable to authenticate")
            refused = await api.get("/service-types/providers/hetzner/server-types", token=admin)
            assert refused.status_code == 400
            assert (await api.get("/service-types/providers/hetzner/server-types", token=admin)).status_code == 200
            pay = f"/invoices/{subscription['id']}/ref/{invoices[0]['id']}/pay"
            fake_cloud.stripe.fail_next(500, "api_error", "Stripe is down", path="/v1/checkout/sessions")
            assert (await api.post(pay, token=token)).status_code == 503
            paid = await api.post(pay, token=token)
            assert paid.status_code == 200, paid.text

        final = scrape(metrics_port)

    # requests, by operationId and status class
    assert final.value("decabill_http_requests_total", operation="getHealth", status_class="2xx") >= 1
    assert final.value("decabill_http_requests_total", operation="listUsers", status_class="4xx") == 1
    assert final.value("decabill_http_requests_total", operation="unmatched", status_class="4xx") >= 1
    assert final.value("decabill_http_requests_total", operation="recordUsage", status_class="2xx") == 1
    assert final.value("decabill_http_request_duration_seconds_count", operation="recordUsage", status_class="2xx") == 1
    assert final.value("decabill_http_requests_total", operation="initiateInvoicePayment", status_class="5xx") == 1
    # the billing day: one customer invoiced by the billing run, nobody left due, nothing failed
    assert after_billing.value("decabill_invoices_issued_total", origin="billing_run") == 1
    assert final.value("decabill_billing_day_customers", state="invoiced") == 1
    assert final.value("decabill_billing_day_customers", state="due") == 0
    assert final.value("decabill_billing_day_customers", state="failed") == 0
    # one unit per slice of the user ids (issue #19), one of which billed the customer; the coordinator runs every
    # second here, so on a slow machine a second round of slices may start before the first has billed anyone
    slice_runs = final.value("decabill_job_runs_total", job="invoicing.bill_slice", outcome="succeeded")
    assert slice_runs >= ID_SLICES and slice_runs % ID_SLICES == 0
    assert final.value("decabill_job_runs_total", job="invoicing.bill_due_users", outcome="succeeded") >= 1
    assert final.value("decabill_job_duration_seconds_count", job="invoicing.bill_slice") == slice_runs
    assert final.value("decabill_periodic_job_last_success_timestamp_seconds", job="invoicing.bill_due_users") > 0
    # the invoice PDF was rendered for the mail, and the mail was refused: pending for a retry
    assert final.value("decabill_pdf_renders_total", document="invoice", outcome="rendered") >= 1
    assert final.value("decabill_smtp_sends_total", outcome="sent") == 1  # the customer's confirmation code
    assert final.value("decabill_mail_deliveries", kind="invoice_issued", status="pending") == 1
    assert final.value("decabill_mail_deliveries", kind="invoice_issued", status="failed") == 0
    # provider and Stripe calls by outcome
    assert final.value("decabill_provider_calls_total", provider="hetzner", operation="fetch_server_types",
                       outcome="rejected") == 1
    assert final.value("decabill_provider_calls_total", provider="hetzner", operation="fetch_server_types",
                       outcome="ok") == 1
    assert final.value("decabill_payment_calls_total", processor="stripe", operation="create_checkout",
                       outcome="unavailable") == 1
    assert final.value("decabill_payment_calls_total", processor="stripe", operation="create_checkout",
                       outcome="ok") == 1
    # the process and the queue
    assert final.value("decabill_process_resident_memory_bytes") > 10_000_000
    # what start-up loaded is out of the collector's way (decabill/collector.py): the spec, the validators, mappers
    assert final.value("decabill_gc_frozen_objects") > 100_000
    assert final.value("decabill_db_pool_connections", state="open") >= 1
    assert final.value("decabill_queue_messages", state="waiting") == 0
    # bounded labels: no id of any kind in a label value
    assert not UUID.search("\n".join(line for line in final.text.splitlines() if not line.startswith("#")))
    # every metric the Grafana dashboard plots is one the server exposes
    dashboard = (Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "decabill.json").read_text()
    plotted = set(re.findall(r"decabill_[a-z_]+", json.loads(dashboard) and dashboard))
    assert plotted and plotted <= final.names(), plotted - final.names()
