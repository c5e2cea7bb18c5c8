"""The hot reads run statements built once per process with the tenant as a bound parameter
(`decabill.repository.prepared`): two tenants served by the same process, reading through the same statements in
turn, each see only their own rows — and a subscription of the other tenant is 404 like a missing one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.helpers import assert_error
from tests.invoicing.conftest import customer_with_subscription, iso
from tests.subscriptions.conftest import manual_plan


def _ok(response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


async def _tenant(api, admin: str, tenant: str, base_price: str) -> dict:
    plan = await manual_plan(api, admin, tenant=tenant, basePrice=base_price)
    token, subscription = await customer_with_subscription(api, admin, plan["id"], f"customer@{tenant}.example",
                                                           tenant=tenant)
    return {"tenant": tenant, "admin": admin, "customer": token, "subscription": subscription}


async def test_the_hot_reads_answer_each_tenant_its_own(billing_api, admin, clock):
    api = billing_api
    acme_admin = await api.admin_token("admin@acme.example", tenant="acme")
    tenants = [await _tenant(api, admin, "default", "30.00"), await _tenant(api, acme_admin, "acme", "45.00")]
    # An issued, unpaid invoice in each tenant: half of the first period billed now (`createInvoice`).
    clock.set(max(iso(t["subscription"]["currentPeriodStart"]) for t in tenants) + dt.timedelta(days=10))
    for t in tenants:
        created = await api.post(f"/invoices/{t['subscription']['id']}", token=t["admin"], tenant=t["tenant"])
        assert created.status_code == 200, created.text
        t["invoice"] = created.json()["invoiceRefId"]

    for _ in range(2):  # in turn, twice: the same statements serve both tenants
        for t, other in (tenants, tenants[::-1]):
            tenant, customer, sid = t["tenant"], t["customer"], t["subscription"]["id"]

            listed = _ok(await api.get(f"/invoices/{sid}", token=customer, tenant=tenant))
            assert [i["id"] for i in listed] == [t["invoice"]]
            balance = listed[0]["balance"]

            open_overdue = _ok(await api.get("/invoices/open-overdue", token=customer, tenant=tenant))
            assert [(i["id"], i["subscriptionNumber"]) for i in open_overdue] == [(t["invoice"],
                                                                                   t["subscription"]["number"])]

            summary = _ok(await api.get("/invoices/summary", token=customer, tenant=tenant))
            assert (summary["openOverdueCount"], summary["openOverdueTotal"]) == (1, balance)

            subscriptions = _ok(await api.get("/subscriptions", token=customer, tenant=tenant))
            assert [s["id"] for s in subscriptions] == [sid]

            page = _ok(await api.get("/admin/billing/invoices?limit=20", token=t["admin"], tenant=tenant))
            assert [i["id"] for i in page["items"]] == [t["invoice"]] and page["total"] == 1

            # The other tenant's subscription does not exist here.
            foreign = other["subscription"]["id"]
            assert_error(await api.get(f"/invoices/{foreign}", token=customer, tenant=tenant), 404,
                         f"Subscription with ID {foreign} not found")


async def test_the_driver_reads_answer_what_the_core_reads_answer(billing_api, admin, clock, monkeypatch):
    """On PostgreSQL the hot reads of a `db.read()` run on asyncpg's connection itself (`_DriverStatement`): each
    answer (every field, each tenant's own rows, the 404 of the other tenant's subscription) is the same JSON as
    through SQLAlchemy's Core. On SQLite they always run as Core."""
    from decabill import db
    from decabill.repository import _DriverStatement

    api = billing_api
    acme_admin = await api.admin_token("admin@acme.example", tenant="acme")
    tenants = [await _tenant(api, admin, "default", "30.00"), await _tenant(api, acme_admin, "acme", "45.00")]
    start = max(iso(t["subscription"]["currentPeriodStart"]) for t in tenants)
    for days in (10, 15):  # two invoices each: what was used up to each day
        clock.set(start + dt.timedelta(days=days))
        for t in tenants:
            created = await api.post(f"/invoices/{t['subscription']['id']}", token=t["admin"], tenant=t["tenant"])
            assert created.status_code == 200, created.text
            t.setdefault("invoices", []).append(created.json()["invoiceRefId"])

    async def answers() -> list[tuple[int, Any]]:
        found = []
        for t, other in (tenants, tenants[::-1]):
            tenant, customer, sid = t["tenant"], t["customer"], t["subscription"]["id"]
            user_id = t["subscription"]["userId"]
            for path, token in ((f"/invoices/{sid}", customer), (f"/invoices/{other['subscription']['id']}", customer),
                                ("/invoices/open-overdue", customer), ("/invoices/summary", customer),
                                ("/subscriptions", customer), ("/admin/billing/invoices?limit=20", t["admin"]),
                                ("/admin/billing/invoices?limit=1&offset=1", t["admin"]),
                                ("/admin/billing/invoices?limit=20&offset=5", t["admin"]),
                                (f"/admin/billing/invoices?limit=20&userId={user_id}", t["admin"]),
                                ("/admin/billing/invoices?limit=20&search=customer", t["admin"])):
                response = await api.get(path, token=token, tenant=tenant)
                found.append((response.status_code, response.json()))
        return found

    driver_runs = []
    fetch = _DriverStatement.fetch

    async def counted(self, driver, params):
        driver_runs.append(self.sql)
        return await fetch(self, driver, params)

    units = []  # per read unit on the driver path: (whether it leased or checked out a connection, made a session)
    close = db._DriverReadUnit.close

    async def noted(self):
        units.append((self._lease is not None or self._connection is not None, self._session is not None))
        await close(self)

    monkeypatch.setattr(_DriverStatement, "fetch", counted)
    monkeypatch.setattr(db._DriverReadUnit, "close", noted)
    through_driver = await answers()
    assert bool(driver_runs) == (db.dialect_name() == "postgresql") == db.driver_reads()
    if db.driver_reads():
        # the hot reads ran without an ORM session; the admin page past the end read the counter through a session
        # on the unit's own connection (the same answers as Core, checked below)
        assert (True, False) in units and (True, True) in units
    monkeypatch.setattr(db, "_driver_reads", False)
    runs = len(driver_runs)
    through_core = await answers()
    assert len(driver_runs) == runs
    assert through_driver == through_core
    # each tenant saw its own two invoices, and the other tenant's subscription was 404
    assert [len(found) for status, found in through_core[:1]] == [2] and through_core[1][0] == 404
    assert sorted(i["id"] for i in through_core[0][1]) == sorted(tenants[0]["invoices"])


async def test_a_driver_read_whose_connection_dies_is_run_again_on_a_fresh_one(billing_api, admin, clock,
                                                                               monkeypatch):
    """A hot read's unit of work on PostgreSQL is a pooled connection without an ORM session (`db.read()`): when
    that connection dies under the read (here: closed just before the statement), the read fails on it, the
    pool is invalidated and the read runs once more on a fresh connection (`retried_on_lost_connection`) — the
    customer gets the answer, not a 500."""
    import pytest

    from decabill import db
    from decabill.repository import _DriverStatement

    if db.dialect_name() != "postgresql":
        pytest.skip("PostgreSQL connections die; SQLite has none to lose")
    api = billing_api
    t = await _tenant(api, admin, "default", "30.00")
    clock.set(iso(t["subscription"]["currentPeriodStart"]) + dt.timedelta(days=10))
    created = await api.post(f"/invoices/{t['subscription']['id']}", token=admin)
    assert created.status_code == 200, created.text
    before = _ok(await api.get("/invoices/summary", token=t["customer"]))
    assert before["openOverdueCount"] == 1

    runs, failed, fetch = [], [], _DriverStatement.fetch

    async def dying_once(self, driver, params):
        runs.append(driver)
        if len(runs) == 1:
            driver.terminate()  # the connection is gone, as after a database restart
        try:
            return await fetch(self, driver, params)
        except Exception as exc:
            failed.append(exc)
            raise

    monkeypatch.setattr(_DriverStatement, "fetch", dying_once)
    assert _ok(await api.get("/invoices/summary", token=t["customer"])) == before
    assert len(runs) == 2 and len(failed) == 1  # failed on the dead connection, answered on a fresh one
    assert runs[1] is not runs[0]
