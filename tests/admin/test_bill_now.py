"""Bill-now through HTTP: queued at once, the billing day's per-user unit does the work on the job layer, the run
is traceable in the audit trail — and racing the billing-day job bills every user exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

import pytest

from decabill import db
from decabill.admin import bill_now
from decabill.invoicing import billing
from decabill.invoicing import tasks as invoicing_tasks
from decabill.jobs import queue
from decabill.tenancy import bound_tenant
from models.invoicing import Invoice, InvoiceAuditLog, InvoiceLine
from models.subscriptions import OpenPosition
from tests.admin.conftest import BASE, add_position, audit
from tests.helpers import assert_error, drain
from tests.invoicing.conftest import customer_with_subscription, order, rows, user_id


@pytest.fixture(autouse=True)
def fresh_broker():
    queue.reset_broker()
    yield
    queue.reset_broker()




async def invoices_of(owner: uuid.UUID) -> list[Invoice]:
    return await rows(Invoice, Invoice.user_id == owner)


async def billed(counts: dict[uuid.UUID, int], timeout: float = 20.0) -> None:
    """Drain the queue, then wait (bill-now answers before the work is done) until each user has as many
    invoices as expected — failing if it takes longer or if anyone gets more."""
    await drain()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = {owner: len(await invoices_of(owner)) for owner in counts}
        assert all(found[o] <= counts[o] for o in counts), found
        if found == counts:
            await drain()
            return
        assert loop.time() < deadline, found
        await asyncio.sleep(0.05)


async def test_bill_now_queues_and_bills_through_the_billing_day_unit(billing_api, admin, customer, plan):
    api = billing_api
    subscription = await order(api, customer, plan["id"])
    second, second_sub = await customer_with_subscription(api, admin, plan["id"], "second@example.com")
    idle, _ = await customer_with_subscription(api, admin, plan["id"], "idle@example.com")
    first_id, second_id, idle_id = user_id(customer), user_id(second), user_id(idle)
    await add_position(subscription, first_id, "30.00", days_ago=60)
    await add_position(subscription, first_id, "12.50", days_ago=30)
    await add_position(second_sub, second_id, "20.00")

    response = await api.post(f"{BASE}/bill-now", token=admin, json={})
    assert response.status_code == 200, response.text
    queued = response.json()
    assert queued["queued"] is True and queued["userCount"] == 2
    request_id = queued["requestId"]
    assert uuid.UUID(request_id).version == 4
    await billed({first_id: 1, second_id: 1, idle_id: 0})

    [first_invoice] = await invoices_of(first_id)
    [second_invoice] = await invoices_of(second_id)
    assert await invoices_of(idle_id) == []
    assert first_invoice.status == "issued" and first_invoice.total_gross == Decimal("50.58")  # 42.50 + 19 %
    assert second_invoice.total_gross == Decimal("23.80")
    assert all(p.invoice_id is not None for p in await rows(OpenPosition))
    trail = await audit(api, admin, str(first_invoice.id))
    assert [e["process"] for e in trail] == ["invoice.bill_now", "invoice.issue", "invoice.create"]
    assert trail[0]["message"] == "Admin bill-now created invoice"
    assert {k: trail[0]["context"][k] for k in ("triggeredBy", "scope", "requestId")} == {
        "triggeredBy": str(user_id(admin)), "scope": "all", "requestId": request_id}
    # the whole run carries the bill-now request id
    assert {e.request_id for e in await rows(InvoiceAuditLog, InvoiceAuditLog.invoice_id.in_(
        [first_invoice.id, second_invoice.id]))} == {request_id}
    [requested] = await rows(InvoiceAuditLog, InvoiceAuditLog.process == "invoice.bill_now_request")
    assert requested.context["userCount"] == 2 and requested.context["scope"] == "all"
    assert requested.actor_user_id == user_id(admin) and requested.invoice_id is None

    # again: nothing left, nobody billed twice
    again = (await api.post(f"{BASE}/bill-now", token=admin)).json()  # the body may be omitted
    assert again["userCount"] == 0 and again["requestId"] != request_id
    await drain()
    assert len(await invoices_of(first_id)) == 1 and len(await invoices_of(second_id)) == 1

    # one user: counted even when there is nothing to bill (skipped silently)
    await add_position(subscription, first_id, "5.00", days_ago=1)
    one = (await api.post(f"{BASE}/bill-now", token=admin, json={"userId": str(first_id)})).json()
    idle_run = (await api.post(f"{BASE}/bill-now", token=admin, json={"userId": str(idle_id)})).json()
    assert one["userCount"] == 1 and idle_run["userCount"] == 1
    await billed({first_id: 2, second_id: 1, idle_id: 0})
    assert len(await invoices_of(first_id)) == 2 and await invoices_of(idle_id) == []
    assert await rows(InvoiceAuditLog, InvoiceAuditLog.level == "error") == []

    summary = (await api.get(f"{BASE}/summary", token=admin)).json()
    assert summary["unbilledTotal"] == 0 and summary["openOverdueCount"] == 3


async def test_positions_recorded_at_one_instant_are_invoiced_in_period_order(billing_api, admin, customer, plan):
    """Positions with the same `created_at` (one job run records several periods at once) become lines in the
    order of their periods, not of their random ids: the ids here sort the other way round."""
    api = billing_api
    subscription = await order(api, customer, plan["id"])
    owner = user_id(customer)
    now = db.utcnow().replace(microsecond=0)
    amounts = ["30.00", "20.00", "10.00"]  # oldest period first
    async with db.transaction() as session:
        for index, amount in enumerate(amounts):
            start = now - dt.timedelta(days=30 * (len(amounts) - index))
            session.add(OpenPosition(
                id=uuid.UUID(int=(len(amounts) - index) << 64 | 0x4000_8000_0000_0000), created_at=now,
                tenant_id="default", subscription_id=uuid.UUID(subscription["id"]), user_id=owner, kind="recurring",
                description=f"Subscription {subscription['number']}", period_start=start,
                period_end=start + dt.timedelta(days=30), amount=Decimal(amount), currency="EUR"))
    response = await api.post(f"{BASE}/bill-now", token=admin, json={"userId": str(owner)})
    assert response.status_code == 200, response.text
    await billed({owner: 1})
    [invoice] = await invoices_of(owner)
    lines = await rows(InvoiceLine, InvoiceLine.invoice_id == invoice.id, order_by=(InvoiceLine.position,))
    assert [line.line_net for line in lines] == [Decimal(amount) for amount in amounts]
    assert [line.period_start for line in lines] == sorted(line.period_start for line in lines)


async def test_a_failing_user_is_recorded_and_keeps_its_positions(billing_api, admin, customer, plan):
    api = billing_api
    subscription = await order(api, customer, plan["id"])
    owner = user_id(customer)
    await add_position(subscription, owner, "10.00")
    await api.post("/customer-profile", token=customer, json={"city": "   "})  # the profile is no longer complete
    queued = (await api.post(f"{BASE}/bill-now", token=admin, json={"userId": str(owner)})).json()
    await drain()
    for _ in range(200):  # the unit runs after the answer
        if await rows(InvoiceAuditLog, InvoiceAuditLog.level == "error"):
            break
        await asyncio.sleep(0.05)
    assert await invoices_of(owner) == []
    [position] = await rows(OpenPosition)
    assert position.invoice_id is None
    [failed] = await rows(InvoiceAuditLog, InvoiceAuditLog.level == "error")
    assert failed.process == "invoice.bill_now" and failed.message == "Admin bill-now failed for user"
    assert failed.user_id == owner and failed.invoice_id is None
    assert failed.context["requestId"] == queued["requestId"] and failed.context["scope"] == "user"
    assert "Customer profile must be complete" in failed.context["error"]


async def test_bill_now_racing_the_billing_day_bills_each_user_once(billing_api, admin, plan):
    """Bill-now (HTTP, and its unit called directly) racing the billing-day coordinator and unit: on PostgreSQL
    these run on separate connections at the same time; every user ends with exactly one invoice."""
    api = billing_api
    owners = []
    for index in range(5):
        token, subscription = await customer_with_subscription(api, admin, plan["id"], f"racer{index}@example.com")
        owner = user_id(token)
        owners.append(owner)
        await add_position(subscription, owner, "10.00", days_ago=40)
        await add_position(subscription, owner, "7.25", days_ago=20)
    admin_id = user_id(admin)

    with bound_tenant("default"):
        assert sorted(await billing.users_due(0)) == sorted(owners)  # their billing day is today
        contenders = []
        for owner in owners:
            contenders += [billing.bill_user(owner), billing.bill_user(owner),
                           bill_now.bill_now_user(owner, request_id=uuid.uuid4(), admin_id=admin_id, scope="user")]
        response, *results = await asyncio.gather(
            api.post(f"{BASE}/bill-now", token=admin, json={}), queue.enqueue(invoicing_tasks.bill_due_users), *contenders)
    assert response.status_code == 200, response.text
    await billed({owner: 1 for owner in owners})

    year = dt.datetime.now(dt.timezone.utc).year
    numbers = []
    for owner in owners:
        [invoice] = await invoices_of(owner)
        assert invoice.status == "issued" and invoice.total_gross == Decimal("20.53")  # 17.25 + 3.28
        numbers.append(invoice.invoice_number)
    assert sorted(numbers) == [f"INV-{year}-{n:05d}" for n in range(1, 6)]  # unique and gapless
    assert all(p.invoice_id is not None for p in await rows(OpenPosition))
    outcomes = [r if isinstance(r, str) else r.status for r in results[1:]]
    assert outcomes.count("billed") <= 5 and set(outcomes) <= {"billed", "busy", "nothing"}
    assert await rows(InvoiceAuditLog, InvoiceAuditLog.level == "error") == []
    if db.dialect_name() == "postgresql":
        assert "busy" in outcomes or outcomes.count("billed") < 5  # they really overlapped


async def test_api_key_and_unknown_user(env, make_api, billing_api, admin):
    assert_error(await billing_api.post(f"{BASE}/bill-now", token=admin,
                                        json={"userId": "00000000-0000-4000-8000-000000000000"}), 400, "User not found")
    env.update(AUTHENTICATION_METHOD="api-key", STATIC_API_KEY="bill-now-key")
    keyed = await make_api()
    assert_error(await keyed.post(f"{BASE}/bill-now", token="Bearer bill-now-key", json={}), 400, "User not authenticated")
