"""The parts of payments that need no database: return URLs (behavior.md §6.2), amounts in minor units, the
processor registry with entry-point plugins (resolved by BILLING_DEFAULT_PAYMENT_PROCESSOR), and the Stripe
processor's webhook parsing."""

from __future__ import annotations

import json
import textwrap
import time
from decimal import Decimal

import pytest

from decabill.config import Settings, get_settings
from decabill.payments import PaymentStatus, get_payment_processors
from decabill.payments.base import from_minor_units, to_minor_units
from decabill.payments.errors import InvalidWebhook
from decabill.payments.stripe_processor import StripeProcessor
from decabill.payments.urls import checkout_return_urls
from decabill.providers import PluginLoadError
from tests.fakes.stripe import make_event, sign_webhook
from tests.payments.conftest import issue_invoice, pay

PARAMS = "subscriptionId=sub-1&invoiceRefId=inv-1"


def _settings(**env: str) -> Settings:
    return Settings(_env_file=None, AUTHENTICATION_METHOD="api-key", STATIC_API_KEY="k", **env)  # type: ignore[call-arg]


def _urls(tenant: str = "default", **env: str) -> tuple[str, str]:
    return checkout_return_urls(_settings(**env), tenant, subscription_id="sub-1", invoice_id="inv-1")


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("BILLING_FRONTEND_URL", "TENANT_FRONTEND_URLS", "STRIPE_CHECKOUT_SUCCESS_URL",
                 "STRIPE_CHECKOUT_CANCEL_URL", "STRIPE_WEBHOOK_SECRET", "ENCRYPTION_KEY", "NODE_ENV"):
        monkeypatch.delenv(name, raising=False)


def test_return_urls_follow_the_reference(clean_env):
    assert _urls() == (f"http://localhost:4500/invoices?payment=success&{PARAMS}",
                       f"http://localhost:4500/invoices?payment=cancel&{PARAMS}")
    assert _urls(BILLING_FRONTEND_URL="https://pay.example.com/")[0] == (
        f"https://pay.example.com/invoices?payment=success&{PARAMS}")
    tenants = "acme=https://billing.acme.com/ , broken, =https://nobody.example, globex="
    assert _urls("acme", TENANT_FRONTEND_URLS=tenants, BILLING_FRONTEND_URL="https://pay.example.com")[0] == (
        f"https://billing.acme.com/invoices?payment=success&{PARAMS}")
    assert _urls("globex", TENANT_FRONTEND_URLS=tenants, BILLING_FRONTEND_URL="https://pay.example.com")[0] == (
        f"https://pay.example.com/invoices?payment=success&{PARAMS}")
    # A full URL: its path and query on the tenant's host; its origin is the last fallback for the host.
    legacy = {"STRIPE_CHECKOUT_SUCCESS_URL": "https://old.example.com/billing/{subscriptionId}/done?x=1",
              "STRIPE_CHECKOUT_CANCEL_URL": "https://old.example.com/billing/cancelled"}
    assert _urls(**legacy) == (f"https://old.example.com/billing/sub-1/done?x=1&{PARAMS}",
                               f"https://old.example.com/billing/cancelled?{PARAMS}")
    assert _urls("acme", TENANT_FRONTEND_URLS=tenants, **legacy)[0] == (
        f"https://billing.acme.com/billing/sub-1/done?x=1&{PARAMS}")
    # A path, as the reference documents (its code ignored it); placeholders are URL-encoded.
    settings = _settings(STRIPE_CHECKOUT_SUCCESS_URL="/pay/{invoiceRefId}/ok", STRIPE_CHECKOUT_CANCEL_URL="pay/cancel")
    success, cancel = checkout_return_urls(settings, "default", subscription_id="", invoice_id="a b/c")
    assert success == "http://localhost:4500/pay/a%20b%2Fc/ok?subscriptionId=&invoiceRefId=a+b%2Fc"
    assert cancel == "http://localhost:4500/pay/cancel?subscriptionId=&invoiceRefId=a+b%2Fc"


def test_amounts_in_minor_units_from_the_exact_decimal():
    assert to_minor_units(Decimal("119.0000"), "EUR") == 11900
    assert to_minor_units(Decimal("0.1000"), "eur") == 10
    assert to_minor_units(Decimal("1.005"), "EUR") == 101  # half up, no float artefact (1.005 * 100 = 100.49999…)
    assert to_minor_units(Decimal("1234.5000"), "JPY") == 1235  # zero-decimal currency
    assert to_minor_units(Decimal("1.2345"), "KWD") == 1235  # three decimals
    assert from_minor_units(11900, "EUR") == Decimal("119.00")
    assert from_minor_units(1235, "JPY") == Decimal("1235")


# --- the Stripe processor's webhook parsing -------------------------------------------------------------------


def _processor(**env: str) -> StripeProcessor:
    return StripeProcessor(_settings(STRIPE_WEBHOOK_SECRET="whsec_unit", **env))


def _session(**fields) -> dict:
    return {"id": "cs_1", "object": "checkout.session", "amount_total": 11900, "currency": "eur",
            "payment_status": "paid", "client_reference_id": "inv-ref",
            "metadata": {"invoiceId": "inv-1", "tenantId": "acme", "paymentAttemptId": "att-1"}, **fields}


@pytest.mark.parametrize(("event_type", "session", "status", "amount"), [
    ("checkout.session.completed", _session(), PaymentStatus.SUCCEEDED, Decimal("119.00")),
    ("checkout.session.completed", _session(payment_status="unpaid"), PaymentStatus.PENDING, None),
    ("checkout.session.async_payment_succeeded", _session(), PaymentStatus.SUCCEEDED, Decimal("119.00")),
    ("checkout.session.async_payment_failed", _session(payment_status="unpaid"), PaymentStatus.FAILED, None),
    ("checkout.session.expired", _session(payment_status="unpaid"), PaymentStatus.CANCELED, None),
])
def test_checkout_events_become_payment_updates(clean_env, event_type, session, status, amount):
    body = json.dumps(make_event(event_type, session, "evt_1")).encode()
    event = _processor().parse_webhook(body, sign_webhook(body, "whsec_unit"))
    assert (event.event_id, event.type) == ("evt_1", event_type)
    update = event.update
    assert (update.status, update.amount, update.external_id) == (status, amount, "cs_1")
    assert (update.invoice_id, update.tenant_id, update.attempt_id) == ("inv-1", "acme", "att-1")


def test_the_client_reference_is_the_fallback_invoice_id_and_other_events_carry_no_update(clean_env):
    body = json.dumps(make_event("checkout.session.completed", _session(metadata={}))).encode()
    assert _processor().parse_webhook(body, sign_webhook(body, "whsec_unit")).update.invoice_id == "inv-ref"
    body = json.dumps(make_event("payment_intent.succeeded", {"id": "pi_1"})).encode()
    assert _processor().parse_webhook(body, sign_webhook(body, "whsec_unit")).update is None


def test_verification_comes_first_and_uses_a_300_second_tolerance(clean_env):
    body = json.dumps(make_event("checkout.session.completed", _session())).encode()
    processor = _processor()
    for header in (None, "", "garbage", sign_webhook(body, "whsec_other"),
                   sign_webhook(body, "whsec_unit", int(time.time()) - 301)):
        with pytest.raises(InvalidWebhook):
            processor.parse_webhook(body, header)
    assert processor.parse_webhook(body, sign_webhook(body, "whsec_unit", int(time.time()) - 299)).update
    with pytest.raises(InvalidWebhook, match="STRIPE_WEBHOOK_SECRET"):
        StripeProcessor(_settings()).parse_webhook(body, sign_webhook(body, "x"))


# --- the registry and plugins ---------------------------------------------------------------------------------

PLUGIN = '''
import datetime as dt

from decabill.payments import CheckoutSession, PaymentProcessor


class TinyPay(PaymentProcessor):
    id = "tiny-pay"
    display_name = "Tiny Pay"
    calls = []

    async def create_checkout(self, request):
        TinyPay.calls.append(request)
        return CheckoutSession(external_id=f"tp_{request.idempotency_key}",
                               checkout_url=f"https://pay.tiny.test/{request.invoice_id}")

    def parse_webhook(self, payload, signature):
        raise NotImplementedError


class NotAProcessor:
    id = "nothing"
'''


def install_plugin(tmp_path, monkeypatch, entry_points: str) -> None:
    (tmp_path / "decabill_test_payplugin.py").write_text(PLUGIN)
    dist_info = tmp_path / "decabill_test_payplugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: decabill-test-payplugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "decabill_test_payplugin", raising=False)


async def test_a_plugin_processor_takes_the_payments_it_is_configured_for(tmp_path, monkeypatch, env, make_api,
                                                                          billing_api, customer, stripe):
    install_plugin(tmp_path, monkeypatch, """
        [decabill.payment_processors]
        tiny-pay = decabill_test_payplugin:TinyPay
        z-broken = decabill_test_payplugin:NotAProcessor
    """)
    stripe_invoice = await issue_invoice(customer)  # issued while Stripe is the default: stays Stripe's
    env.update(BILLING_DEFAULT_PAYMENT_PROCESSOR="tiny-pay")
    api = await make_api()
    assert get_payment_processors().ids() == ["stripe", "tiny-pay"]
    invoice = await issue_invoice(customer)
    assert invoice.payment_processor == "tiny-pay"
    checkout = (await pay(api, customer, invoice.id)).json()["checkoutUrl"]
    assert checkout == f"https://pay.tiny.test/{invoice.id}"
    assert stripe.requests == []  # no Stripe customer for a processor without customers either
    assert (await pay(api, customer, stripe_invoice.id)).json()["checkoutUrl"].startswith("https://checkout.stripe")

    env.update(BILLING_DEFAULT_PAYMENT_PROCESSOR="nowhere-pay")
    api = await make_api()
    other = await issue_invoice(customer)
    response = await pay(api, customer, other.id, expect=400)
    assert response.json()["message"] == "Payment processor 'nowhere-pay' not found. Available: stripe, tiny-pay"

    env.update(DYNAMIC_PROVIDERS_FAIL_FAST="true")
    with pytest.raises(PluginLoadError, match="z-broken"):
        get_payment_processors()
    assert get_settings().dynamic_providers_fail_fast


def test_a_processor_keeping_customers_must_be_able_to_create_them():
    """Refused when the plugin loads (one line naming the gap), not with a 500 at the first payment."""
    from decabill.payments.base import PaymentProcessor
    from decabill.payments.registry import as_processor

    class NoCustomers(PaymentProcessor):
        id = "halfway"
        display_name = "Halfway"
        customer_profile_field = "stripe_customer_id"

        async def create_checkout(self, request):
            raise AssertionError("not called")

        def parse_webhook(self, raw_body, signature):
            raise AssertionError("not called")

    with pytest.raises(ValueError, match="must implement create_customer"):
        as_processor(NoCustomers)

    class WithCustomers(NoCustomers):
        async def create_customer(self, request):
            return "cus_1"

    assert as_processor(WithCustomers).id == "halfway"
