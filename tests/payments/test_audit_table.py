"""The audit trail's process names, levels, messages, users and context keys are those of the reference's
table (behavior.md part B §7.5): every row is written by going through the HTTP API (and the bill-now unit),
and each entry the code writes for a row is compared with it."""

from __future__ import annotations

import re
import uuid

from decabill.admin import bill_now
from decabill.invoicing import service as invoicing_service
from decabill.tenancy import bound_tenant
from models.invoicing import InvoiceAuditLog
from tests.admin.conftest import BASE, add_position, line
from tests.invoicing.conftest import order, user_id
from tests.payments.conftest import deliver, pay, rows, session_id_of
from tests.subscriptions.conftest import manual_plan

INVOICE_USER, ADMIN, PAYER, BILLED_USER = "invoice user", "admin", "payer", "billed user"

#: behavior.md part B §7.5, "Process names written by the source": (process, level, message, user, context keys)
REFERENCE = [
    ("invoice.create", "info", "Created invoice draft", INVOICE_USER, {"subscriptionId", "totalGross"}),
    ("invoice.issue", "info", "Issued invoice <number>", INVOICE_USER, {"invoiceNumber", "totalGross"}),
    ("invoice.manual_create", "info", "Admin created manual invoice draft", INVOICE_USER,
     {"adminUserId", "subscriptionId"}),
    ("invoice.manual_update", "info", "Admin updated manual invoice draft", INVOICE_USER, {"adminUserId", "totalGross"}),
    ("invoice.manual_issue", "info", "Admin issued manual invoice draft", INVOICE_USER, {"adminUserId", "dueInDays"}),
    ("invoice.manual_delete", "info", "Admin deleted manual invoice draft", INVOICE_USER, {"adminUserId"}),
    ("invoice.void", "info", "Voided invoice", ADMIN, {"adminUserId"}),
    ("invoice.mark_paid_manual", "info", "Admin marked invoice as paid", INVOICE_USER,
     {"previousStatus", "previousBalanceDue", "reason", "adminUserId"}),
    ("invoice.mark_unpaid_manual", "info", "Admin marked invoice as unpaid", INVOICE_USER,
     {"previousStatus", "reason", "adminUserId"}),
    ("invoice.bill_now", "info", "Admin bill-now created invoice", BILLED_USER, {"triggeredBy", "scope", "requestId"}),
    ("invoice.bill_now", "error", "Admin bill-now failed for user", BILLED_USER,
     {"triggeredBy", "scope", "requestId", "error"}),
    ("payment.init", "info", "Payment checkout session created", PAYER, {"processor", "externalId"}),
    ("payment.webhook", "info", "Invoice marked paid", INVOICE_USER, {"externalId"}),
]


def _message_pattern(message: str) -> re.Pattern:
    return re.compile(re.escape(message).replace(re.escape("<number>"), r"INV-\d{4}-\d{5}") + r"\Z")


async def test_every_row_of_the_reference_audit_table_is_written_as_documented(billing_api, admin, customer, stripe,
                                                                               monkeypatch):
    api = billing_api
    owner, admin_id = user_id(customer), user_id(admin)

    # manual invoice: create, update, issue; the customer pays it through Stripe; admin corrections
    draft = (await api.post(f"{BASE}/invoices/manual", token=admin,
                            json={"userId": str(owner), "lineItems": [line("Work", 1, 10)]})).json()
    assert (await api.post(f"{BASE}/invoices/{draft['id']}", token=admin,
                           json={"lineItems": [line("Work", 2, 10)]})).status_code == 200
    assert (await api.post(f"{BASE}/invoices/{draft['id']}/issue", token=admin, json={})).status_code == 200
    session_id = session_id_of((await pay(api, customer, draft["id"])).json()["checkoutUrl"])
    assert (await deliver(api, stripe.complete_session(session_id))).status_code == 200
    for verb in ("mark-unpaid", "mark-paid"):
        response = await api.post(f"{BASE}/invoices/{draft['id']}/{verb}", token=admin, json={"reason": "check"})
        assert response.status_code == 200, response.text
    # a draft deleted, an invoice voided
    doomed = (await api.post(f"{BASE}/invoices/manual", token=admin,
                             json={"userId": str(owner), "lineItems": [line("Oops", 1, 10)]})).json()
    assert (await api.delete(f"{BASE}/invoices/{doomed['id']}", token=admin)).status_code == 204
    voided = (await api.post(f"{BASE}/invoices/manual", token=admin,
                             json={"userId": str(owner), "lineItems": [line("Void me", 1, 10)]})).json()
    await api.post(f"{BASE}/invoices/{voided['id']}/issue", token=admin, json={})
    assert (await api.post(f"{BASE}/invoices/{voided['id']}/void", token=admin, json={})).status_code == 200
    # bill-now: one unit that bills, one that fails
    plan = await manual_plan(api, admin)
    subscription = await order(api, customer, plan["id"])
    await add_position(subscription, owner, "12.00")
    with bound_tenant("default"):
        assert await bill_now.bill_now_user(owner, request_id=uuid.uuid4(), admin_id=admin_id, scope="user") == "billed"

        async def broken(*args, **kwargs):
            raise RuntimeError("billing broke")

        monkeypatch.setattr(invoicing_service, "bill_user", broken)
        try:
            await bill_now.bill_now_user(owner, request_id=uuid.uuid4(), admin_id=admin_id, scope="user")
        except RuntimeError:
            pass
        else:
            raise AssertionError("the failing unit should raise")

    entries = await rows(InvoiceAuditLog)
    users = {INVOICE_USER: owner, ADMIN: admin_id, PAYER: owner, BILLED_USER: owner}
    for process, level, message, user, keys in REFERENCE:
        written = [e for e in entries if e.process == process and e.level == level]
        assert written, f"no {level} entry {process}"
        for entry in written:
            assert _message_pattern(message).match(entry.message), (process, entry.message)
            assert entry.user_id == users[user], (process, entry.user_id)
            assert keys <= set(entry.context), (process, keys - set(entry.context))
    # no other name for a payment applied by the webhook
    assert not [e for e in entries if e.process == "payment.received"]
