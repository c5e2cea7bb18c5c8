"""The anonymous catalog (behavior.md part A §4.5)."""

from __future__ import annotations

import uuid

from tests.catalog.conftest import create_plan, create_type
from tests.helpers import assert_error

OFFERING_KEYS = {"id", "name", "description", "serviceTypeId", "serviceTypeName", "billingIntervalType",
                 "billingIntervalValue", "totalPrice", "orderingHighlights", "allowCustomerLocationSelection"}


async def test_only_active_plans_with_marketing_fields_newest_first(api, admin):
    service_type = await create_type(api, admin, configSchema={"secret": "schema"})
    old = await create_plan(api, admin, service_type["id"], name="Old", basePrice="3", description="Small",
                            providerConfigDefaults={"apiToken": "secret"})
    await create_plan(api, admin, service_type["id"], name="Hidden", basePrice="1", isActive=False)
    new = await create_plan(api, admin, service_type["id"], name="New", basePrice="7.5")

    response = await api.get("/public/service-plan-offerings")
    assert response.status_code == 200
    offerings = response.json()
    assert [o["id"] for o in offerings] == [new["id"], old["id"]]
    assert all(set(o) == OFFERING_KEYS for o in offerings)  # no base price, margins, provider config or schema
    assert "secret" not in response.text
    assert offerings[1]["description"] == "Small" and offerings[1]["totalPrice"] == 3
    assert offerings[0]["description"] is None and offerings[0]["totalPrice"] == 7.5

    # the service type's own isActive is not consulted (as in the reference)
    await api.post(f"/service-types/{service_type['id']}", token=admin, json={"isActive": False})
    assert len((await api.get("/public/service-plan-offerings")).json()) == 2


async def test_paging_and_filter(api, admin):
    first = await create_type(api, admin, key="first", name="First")
    second = await create_type(api, admin, key="second", name="Second")
    ids = [(await create_plan(api, admin, (first if i % 2 else second)["id"], name=f"P{i}"))["id"] for i in range(5)]
    newest_first = ids[::-1]
    listing = lambda **params: api.get("/public/service-plan-offerings", params=params)  # noqa: E731
    assert [o["id"] for o in (await listing()).json()] == newest_first
    assert [o["id"] for o in (await listing(limit=2, offset=1)).json()] == newest_first[1:3]
    assert [o["id"] for o in (await listing(serviceTypeId=first["id"], limit=1, offset=1)).json()] == [ids[1]]
    assert {o["serviceTypeName"] for o in (await listing(serviceTypeId=second["id"])).json()} == {"Second"}
    assert (await listing(serviceTypeId=str(uuid.uuid4()))).json() == []
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "many"}, {"offset": -1}, {"serviceTypeId": "nope"}):
        assert_error(await listing(**bad), 400)


async def test_tenant_comes_from_the_header(api, admin):
    service_type = await create_type(api, admin)
    await create_plan(api, admin, service_type["id"])
    acme_admin = await api.admin_token(tenant="acme")
    acme_type = await create_type(api, acme_admin, tenant="acme")
    acme_plan = await create_plan(api, acme_admin, acme_type["id"], tenant="acme", name="Acme plan")
    acme = await api.get("/public/service-plan-offerings", tenant="acme")
    assert [o["id"] for o in acme.json()] == [acme_plan["id"]]
    assert (await api.get("/public/service-plan-offerings/cheapest", tenant="acme")).json()["id"] == acme_plan["id"]
    assert (await api.get("/public/service-plan-offerings", tenant="globex")).json() == []
    assert_error(await api.get("/public/service-plan-offerings/cheapest", tenant="globex"), 404,
                 "No active service plan offerings")
    assert_error(await api.get("/public/service-plan-offerings", tenant="nowhere"), 400)


async def test_cheapest_uses_the_total_price_and_breaks_ties_by_id(api, admin):
    assert_error(await api.get("/public/service-plan-offerings/cheapest"), 404, "No active service plan offerings")
    first = await create_type(api, admin, key="first")
    second = await create_type(api, admin, key="second")
    # 10 + 10 % + 0 = 11  vs  8 + 0 % + 2.5 = 10.5  vs  inactive 1
    await create_plan(api, admin, first["id"], basePrice="10", marginPercent="10")
    cheap = await create_plan(api, admin, first["id"], basePrice="8", marginFixed="2.5")
    await create_plan(api, admin, first["id"], basePrice="1", isActive=False)
    tied = [await create_plan(api, admin, second["id"], basePrice="5") for _ in range(3)]

    best = await api.get("/public/service-plan-offerings/cheapest", params={"serviceTypeId": first["id"]})
    assert best.status_code == 200 and best.json()["id"] == cheap["id"] and best.json()["totalPrice"] == 10.5
    tie = await api.get("/public/service-plan-offerings/cheapest", params={"serviceTypeId": second["id"]})
    assert tie.json()["id"] == min(p["id"] for p in tied)
    overall = await api.get("/public/service-plan-offerings/cheapest")
    assert overall.json()["id"] == min(p["id"] for p in tied)
    assert_error(await api.get("/public/service-plan-offerings/cheapest", params={"serviceTypeId": str(uuid.uuid4())}), 404)
    assert_error(await api.get("/public/service-plan-offerings/cheapest", params={"serviceTypeId": "x"}), 400)
