"""The admin invoice list's unfiltered total is the tenant's invoice counter (migration 0024's triggers), not a
count, and its search counts a matched customer's invoices from that customer's counter (migration 0030's): both
must follow every way an invoice is made or removed — a manual draft and its deletion, issuing, the subscription
charge, the billing day's unit of one customer and its batch — stay per tenant, and start at zero again when the
table is emptied (the test database reset truncates it)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter

from sqlalchemy import text

from decabill import db
from decabill.invoicing import billing
from decabill.subscriptions import billing as subscription_billing
from decabill.tenancy import bound_tenant
from models.invoicing import Invoice, InvoiceCount, InvoiceUserCount
from tests.admin.conftest import BASE, create_draft, issue, line
from tests.invoicing.conftest import customer_with_subscription, rows, user_id


async def _total(api, admin: str, tenant: str | None = None) -> int:
    response = await api.get(f"{BASE}/invoices?limit=20", token=admin, tenant=tenant)
    assert response.status_code == 200, response.text
    return response.json()["total"]


async def _assert_total(api, admin: str, expected: int) -> None:
    """The listed total, the invoices that exist and the counter row agree."""
    assert await _total(api, admin) == expected
    assert len(await rows(Invoice, Invoice.tenant_id == "default")) == expected
    assert [c.invoices for c in await rows(InvoiceCount, InvoiceCount.tenant_id == "default")] in ([expected], [])
    # each customer's counter holds as many as the customer has (a customer with none: no row, or 0)
    invoices = await rows(Invoice)
    owned = Counter((invoice.tenant_id, invoice.user_id) for invoice in invoices)
    counted = {(c.tenant_id, c.user_id): c.invoices for c in await rows(InvoiceUserCount) if c.invoices}
    assert counted == dict(owned)


async def test_the_total_follows_every_way_invoices_are_made_and_removed(billing_api, admin, plan, clock):
    api = billing_api
    assert await _total(api, admin) == 0
    customers = [await customer_with_subscription(api, admin, plan["id"], f"count{n}@example.com") for n in range(4)]
    await _assert_total(api, admin, 0)

    owner = user_id(customers[0][0])
    kept = await create_draft(api, admin, owner, [line("Setup", 1, 10)])
    dropped = await create_draft(api, admin, owner, [line("Extra", 1, 5)])
    await _assert_total(api, admin, 2)
    deleted = await api.delete(f"{BASE}/invoices/{dropped['id']}", token=admin)
    assert deleted.status_code == 204, deleted.text
    await _assert_total(api, admin, 1)
    await issue(api, admin, kept["id"])
    await _assert_total(api, admin, 1)

    clock.set(db.utcnow() + dt.timedelta(days=70))  # two month periods have ended
    charged = await api.post(f"/invoices/{customers[0][1]['id']}", token=admin, json={})
    assert charged.status_code == 200, charged.text
    await _assert_total(api, admin, 2)

    users = [user_id(token) for token, _ in customers]
    with bound_tenant("default"):
        for _, subscription in customers[1:]:
            assert await subscription_billing.bill_due_period(uuid.UUID(subscription["id"])) is not None
        assert (await billing.bill_user(users[1])).status == "billed"  # the unit of one customer
        assert (await billing.bill_users(users[2:]))["billed"] == 2  # the batch (one executemany INSERT)
    await _assert_total(api, admin, 5)

    # another tenant's invoices are counted apart
    other_admin = await api.admin_token("admin@acme.example", tenant="acme")
    other = await api.user_token(other_admin, "acme-customer@example.com", tenant="acme")
    await create_draft(api, other_admin, user_id(other), [line("Acme", 1, 1)], tenant="acme")
    assert await _total(api, other_admin, tenant="acme") == 1
    await _assert_total(api, admin, 5)


async def test_emptying_the_invoices_resets_the_counters(billing_api, admin, customer):
    api = billing_api
    await create_draft(api, admin, user_id(customer), [line("Setup", 1, 10)])
    assert await _total(api, admin) == 1
    async with db.get_engine().begin() as conn:
        if conn.dialect.name == "postgresql":  # the test database reset: TRUNCATE (no row triggers fire)
            await conn.execute(text("TRUNCATE invoices CASCADE"))
        else:  # SQLite's reset deletes the rows
            await conn.execute(text("DELETE FROM invoice_lines"))
            await conn.execute(text("DELETE FROM invoice_audit_logs"))
            await conn.execute(text("DELETE FROM invoices"))
    assert await _total(api, admin) == 0
    assert await rows(InvoiceCount, InvoiceCount.invoices != 0) == []
    assert await rows(InvoiceUserCount, InvoiceUserCount.invoices != 0) == []
