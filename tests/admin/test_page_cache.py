"""The admin invoice pages a process keeps on PostgreSQL (decabill/admin/page_cache.py) are answered again only while
the tenant's list version is the one they were read at, and the database changes that version (migration 0029) at
the commit of every change to what the list shows — here made on a connection of its own, as another process or an
operator's tool would, so that only the version can tell the process."""

from __future__ import annotations

import asyncpg
import orjson
import pytest
from prometheus_client import REGISTRY

from decabill import db
from decabill.admin.page_cache import ENTRY_OVERHEAD
from decabill.invoicing.repository import InvoiceRepository
from tests.admin.conftest import BASE, create_draft, issue, line
from tests.invoicing.conftest import customer_with_subscription, user_id

pytestmark = pytest.mark.usefixtures("postgresql_only")


@pytest.fixture
def postgresql_only(database):
    if db.dialect_name() != "postgresql":
        pytest.skip("the admin pages are kept on PostgreSQL only")


def outcomes() -> dict[str, float]:
    return {outcome: REGISTRY.get_sample_value("decabill_admin_invoice_page_cache_total", {"outcome": outcome}) or 0
            for outcome in ("hit", "stale", "miss")}


class Pages:
    """The admin list as a client reads it, and how each read was answered (hit, stale or miss)."""

    def __init__(self, api, admin: str) -> None:
        self.api, self.admin = api, admin

    async def read(self, answered: str, tenant: str | None = None, admin: str | None = None, **params) -> dict:
        before = outcomes()
        response = await self.api.get(f"{BASE}/invoices", token=admin or self.admin, tenant=tenant,
                                      params={"limit": 10, **params})
        assert response.status_code == 200, response.text
        after = outcomes()
        assert {name: after[name] - before[name] for name in after if after[name] != before[name]} == {answered: 1}
        return response.json()


async def _sql(database: str, *statements: str) -> None:
    """The statements in one transaction on a connection of their own (not the app's pool)."""
    connection = await asyncpg.connect(database.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with connection.transaction():
            for statement in statements:
                await connection.execute(statement)
    finally:
        await connection.close()


async def test_a_kept_page_is_answered_until_what_it_shows_changes_anywhere(billing_api, admin, plan, database):
    api, pages = billing_api, Pages(billing_api, admin)
    owner, subscription = await customer_with_subscription(api, admin, plan["id"], "kept@example.com")
    first = await issue(api, admin, (await create_draft(api, admin, user_id(owner), [line("A", 1, 10)],
                                                        subscriptionId=subscription["id"]))["id"])
    second = await create_draft(api, admin, user_id(owner), [line("B", 1, 20)])

    shown = await pages.read("miss", search="kept@")
    assert [item["id"] for item in shown["items"]] == [second["id"], first["id"]] and shown["total"] == 2
    assert await pages.read("hit", search="kept@") == shown
    assert (await pages.read("miss", search="KEPT@"))["items"] == shown["items"]  # another query, kept apart

    # a column the list does not show: the kept page still holds
    await _sql(database, f"UPDATE invoices SET order_reference = 'PO-1' WHERE id = '{first['id']}'")
    assert await pages.read("hit", search="kept@") == shown

    # the status, from elsewhere
    await _sql(database, f"UPDATE invoices SET status = 'paid', balance_due = 0 WHERE id = '{first['id']}'")
    changed = await pages.read("stale", search="kept@")
    assert [(item["status"], item["balance"], item["canPay"]) for item in changed["items"][1:]] == [("paid", 0, False)]
    assert await pages.read("hit", search="kept@") == changed

    # the subscription's number shown on the invoice
    await _sql(database, f"UPDATE subscriptions SET number = 'SUB-RENAMED' WHERE id = '{subscription['id']}'")
    assert (await pages.read("stale", search="kept@"))["items"][1]["subscriptionNumber"] == "SUB-RENAMED"

    # the owner's email: the old search finds nothing now, the new one both
    await _sql(database, f"UPDATE users SET email = 'moved@example.com' WHERE id = '{user_id(owner)}'")
    assert (await pages.read("stale", search="kept@"))["total"] == 0
    moved = await pages.read("miss", search="moved@")
    assert moved["total"] == 2 and {item["userEmail"] for item in moved["items"]} == {"moved@example.com"}

    # an invoice made through the API and one deleted elsewhere; the unfiltered page too
    assert (await pages.read("miss"))["total"] == 2
    third = await create_draft(api, admin, user_id(owner), [line("C", 1, 30)])
    assert [item["id"] for item in (await pages.read("stale", search="moved@"))["items"]][0] == third["id"]
    assert (await pages.read("stale"))["total"] == 3
    await _sql(database, f"DELETE FROM invoice_lines WHERE invoice_id = '{second['id']}'",
               f"DELETE FROM invoices WHERE id = '{second['id']}'")
    after_delete = await pages.read("stale", search="moved@")
    assert [item["id"] for item in after_delete["items"]] == [third["id"], first["id"]] and after_delete["total"] == 2
    assert (await pages.read("stale"))["total"] == 2

    # a change rolled back changes nothing
    connection = await asyncpg.connect(database.replace("postgresql+asyncpg", "postgresql"))
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute(f"UPDATE invoices SET status = 'void' WHERE id = '{third['id']}'")
        await transaction.rollback()
    finally:
        await connection.close()
    assert await pages.read("hit", search="moved@") == after_delete


async def test_each_tenant_has_its_version_changed_once_per_transaction(billing_api, admin, database):
    api, pages = billing_api, Pages(billing_api, admin)
    owner = await api.user_token(admin, "versions@example.com")
    other_admin = await api.admin_token("admin@acme.example", tenant="acme")
    other_owner = await api.user_token(other_admin, "versions@acme.example", tenant="acme")
    for _ in range(3):
        await create_draft(api, admin, user_id(owner), [line("D", 1, 1)])
    await create_draft(api, other_admin, user_id(other_owner), [line("E", 1, 1)], tenant="acme")

    async def versions() -> tuple[dict[str, int], int]:
        connection = await asyncpg.connect(database.replace("postgresql+asyncpg", "postgresql"))
        try:
            rows = await connection.fetch("SELECT tenant_id, list_version FROM invoice_counts")
            drawn = await connection.fetchval("SELECT last_value FROM invoice_list_versions")
        finally:
            await connection.close()
        return {row["tenant_id"]: row["list_version"] for row in rows}, drawn

    await pages.read("miss")
    await pages.read("miss", tenant="acme", admin=other_admin)
    before, drawn_before = await versions()
    assert set(before) == {"default", "acme"} and 0 not in before.values()
    # one transaction, four invoices of two tenants changed: one new version each, drawn at the commit
    await _sql(database, "UPDATE invoices SET dunning_level = 1", "UPDATE invoices SET dunning_level = 2")
    after, drawn_after = await versions()
    assert drawn_after == drawn_before + 2 and set(after.values()) == {drawn_before + 1, drawn_before + 2}
    assert (await pages.read("stale"))["items"][0]["dunningLevel"] == 2
    assert (await pages.read("stale", tenant="acme", admin=other_admin))["items"][0]["dunningLevel"] == 2
    # another tenant's change leaves this tenant's kept page as it was
    await _sql(database, "UPDATE invoices SET dunning_level = 3 WHERE tenant_id = 'acme'")
    assert (await pages.read("hit"))["items"][0]["dunningLevel"] == 2


async def test_the_invoice_trigger_watches_every_column_the_list_shows(database):
    """An update that sets only columns the trigger does not name leaves the version as it is: every column the
    list reads (`InvoiceRepository.LISTED`, the search's among them) must be named."""
    connection = await asyncpg.connect(database.replace("postgresql+asyncpg", "postgresql"))
    try:
        watched = await connection.fetchval(
            "SELECT array_agg(attribute.attname::text) FROM pg_trigger AS trigger "
            "JOIN pg_attribute AS attribute ON attribute.attrelid = trigger.tgrelid "
            "AND attribute.attnum = ANY(trigger.tgattr::int2[]) "
            "WHERE trigger.tgname = 'invoices_list_changed'")
    finally:
        await connection.close()
    assert set(InvoiceRepository.LISTED) <= set(watched)


async def test_the_budget_bounds_what_is_kept(billing_api, admin, env):
    api = billing_api
    owner = await api.user_token(admin, "budget@example.com")
    for _ in range(3):
        await create_draft(api, admin, user_id(owner), [line("F", 1, 1)])
    pages = Pages(api, admin)
    one = await pages.read("miss", limit=1)
    assert await pages.read("hit", limit=1) == one
    # a page larger than the whole budget is not kept; the smaller one still is (PostgreSQL's JSON is longer)
    env.update(ADMIN_PAGE_CACHE_BYTES=str(len(orjson.dumps(one["items"])) * 2 + ENTRY_OVERHEAD + 150))
    await pages.read("miss", limit=1)
    await pages.read("miss", limit=3)
    await pages.read("miss", limit=3)
    await pages.read("hit", limit=1)
    # pages of no items count their query's text: long terms matching nothing fill the budget too
    terms = [f"{n}{'x' * 3000}" for n in range(4)]
    env.update(ADMIN_PAGE_CACHE_BYTES=str(2 * (3000 + ENTRY_OVERHEAD + 100)))
    for term in terms:
        assert (await pages.read("miss", search=term))["total"] == 0
    await pages.read("hit", search=terms[-1])
    await pages.read("hit", search=terms[-2])
    await pages.read("miss", search=terms[0])  # the least recently used went first
    env.update(ADMIN_PAGE_CACHE_BYTES="0")  # none kept
    await pages.read("miss", limit=1)
    await pages.read("miss", limit=1)
