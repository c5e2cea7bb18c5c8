"""Who sees which invoice (another user's or tenant's → 404, admins on the subscription-scoped downloads), and
`createInvoice` (admin): accrued time plus unbilled usage as one issued invoice, never billing time twice."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from decabill.invoicing import billing
from decabill.subscriptions import billing as subscription_billing
from decabill.tenancy import bound_tenant
from models.invoicing import UsageRecord
from models.subscriptions import OpenPosition
from tests.helpers import assert_error
from tests.invoicing.conftest import customer_with_subscription, iso, order, rows, user_id

D = Decimal


@pytest.fixture
async def billed(billing_api, admin, customer, plan, clock) -> dict:
    """The customer's subscription and its first invoice (billed on a day after the first period)."""
    subscription = await order(billing_api, customer, plan["id"])
    clock.set(iso(subscription["currentPeriodEnd"]) + dt.timedelta(hours=1))
    with bound_tenant("default"):
        await subscription_billing.bill_due_period(uuid.UUID(subscription["id"]))
        [invoice] = (await billing.bill_user(user_id(customer))).invoices
    return {"subscription": subscription, "invoice": str(invoice.id)}


async def test_other_users_and_tenants_get_404(billing_api, admin, customer, plan, billed):
    api = billing_api
    sid, iid = billed["subscription"]["id"], billed["invoice"]
    other, own_subscription = await customer_with_subscription(api, admin, plan["id"], "other@example.com")
    not_found = f"Subscription with ID {sid} not found"
    for path, message in [
        (f"/invoices/ref/{iid}", "Invoice not found"), (f"/invoices/ref/{iid}/pdf", "Invoice not found"),
        (f"/invoices/ref/{iid}/void-document/pdf", "Invoice not found"), (f"/invoices/{sid}", not_found),
        (f"/invoices/{sid}/ref/{iid}", not_found), (f"/invoices/{sid}/ref/{iid}/pdf", not_found),
        (f"/invoices/{sid}/ref/{iid}/void-document/pdf", not_found),
        (f"/invoices/{own_subscription['id']}/ref/{iid}", "Invoice not found"),
        (f"/usage/summary/{sid}", not_found),
    ]:
        assert_error(await api.get(path, token=other), 404, message)
    assert (await api.get("/invoices/open-overdue", token=other)).json() == []
    assert (await api.get(f"/invoices/{own_subscription['id']}", token=other)).json() == []
    summary = (await api.get("/invoices/summary", token=other)).json()
    assert summary["openOverdueCount"] == 0 and summary["openOverdueTotal"] == 0

    # Another tenant's admin: nothing of ours exists there.
    acme_admin = await api.admin_token("admin@acme.example", tenant="acme")
    for path in (f"/invoices/ref/{iid}", f"/invoices/{sid}/ref/{iid}/pdf"):
        assert (await api.get(path, token=acme_admin, tenant="acme")).status_code == 404
    assert_error(await api.post(f"/invoices/{sid}/ref/{iid}/void", token=acme_admin, tenant="acme"), 404, not_found)

    # Our admin: the subscription-scoped downloads yes, the customer's "own" views no.
    assert (await api.get(f"/invoices/{sid}/ref/{iid}/pdf", token=admin)).status_code == 200
    assert_error(await api.get(f"/invoices/ref/{iid}", token=admin), 404, "Invoice not found")
    assert_error(await api.get(f"/invoices/{sid}", token=admin), 404, not_found)
    # Unknown and malformed ids.
    unknown = uuid.uuid4()
    assert_error(await api.get(f"/invoices/ref/{unknown}", token=customer), 404, "Invoice not found")
    assert_error(await api.get(f"/invoices/{sid}/ref/{unknown}/pdf", token=admin), 404, "Invoice not found")
    assert_error(await api.get("/invoices/ref/not-a-uuid", token=admin), 400)


async def test_create_invoice_bills_accrued_time_and_usage_once(billing_api, admin, customer, plan, clock):
    api = billing_api
    subscription = await order(api, customer, plan["id"])
    sid = subscription["id"]
    start, end = iso(subscription["currentPeriodStart"]), iso(subscription["currentPeriodEnd"])
    path = f"/invoices/{sid}"
    assert_error(await api.post(path, token=customer, json={}), 403)
    assert_error(await api.post(f"/invoices/{uuid.uuid4()}", token=admin), 404)
    recorded = await api.post("/usage/record", token=customer, json={
        "subscriptionId": sid, "periodStart": "2026-01-01T00:00:00Z", "periodEnd": "2026-01-02T00:00:00Z",
        "usagePayload": {"totalCost": "5"}})
    assert recorded.status_code == 200

    middle = clock.set(start + (end - start) / 2)
    created = await api.post(path, token=admin, json={"description": "Half a period"})
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["invoiceNumber"].startswith(f"INV-{middle.year}-") and set(body) == {"invoiceRefId", "invoiceNumber"}
    detail = (await api.get(f"/invoices/{sid}/ref/{body['invoiceRefId']}", token=customer)).json()
    [line] = detail["lineItems"]
    assert line["description"] == "Half a period" and detail["status"] == "issued"
    with bound_tenant("default"):
        [charge] = await rows(OpenPosition)
        [usage] = await rows(UsageRecord)
    assert charge.kind == "charge" and str(charge.invoice_id) == body["invoiceRefId"]
    assert (charge.period_start, charge.period_end) == (start, middle)
    assert str(usage.invoice_id) == body["invoiceRefId"]  # D8: the usage is billed, here and only here
    assert D(str(line["unitPriceNet"])) == (charge.amount + D("5")).quantize(D("0.01"))
    moved = (await api.get(f"/subscriptions/{sid}", token=customer)).json()
    assert iso(moved["currentPeriodStart"]) == middle  # the next position starts where the charge ended

    assert_error(await api.post(path, token=admin), 400, "No billable amount since last invoice")

    # The period's end: the billing job records only the rest; together they cost one period's proration.
    clock.set(end)
    with bound_tenant("default"):
        rest = await subscription_billing.bill_due_period(uuid.UUID(sid))
        assert (rest.period_start, rest.period_end) == (middle, end)
        whole = await _amount_of(plan, start, end)
        assert abs(charge.amount + rest.amount - whole) <= D("0.0002")
        [invoice] = (await billing.bill_user(user_id(customer))).invoices
        [usage] = await rows(UsageRecord)
    assert str(usage.invoice_id) == body["invoiceRefId"]  # not billed a second time
    detail = (await api.get(f"/invoices/ref/{invoice.id}", token=customer)).json()
    assert len(detail["lineItems"]) == 1  # only the rest of the period
    listed = (await api.get(path, token=customer)).json()
    assert [i["id"] for i in listed] == [str(invoice.id), body["invoiceRefId"]]  # newest first


async def _amount_of(plan: dict, start, end) -> Decimal:
    from decabill.catalog.service import find_service_plan
    from decabill.subscriptions.schedule import amount_for
    from decabill import db

    async with db.transaction():
        service_plan = await find_service_plan(uuid.UUID(plan["id"]))
    return amount_for(service_plan, D(plan["basePrice"]), start, end)
