"""Service plans: CRUD, field rules, the customer-location rule, roles and tenant isolation
(behavior.md part A §4.3)."""

from __future__ import annotations

import uuid

import pytest

from tests.catalog.conftest import create_plan, create_type
from tests.helpers import assert_error

GEO_SCHEMA = {"properties": {"region": {"type": "string", "enum": ["fra1", "ams3"]}}}


async def test_defaults_and_decimal_strings(api, admin):
    service_type = await create_type(api, admin)
    plan = await create_plan(api, admin, service_type["id"], basePrice="4.5", marginPercent="12.25", marginFixed="0")
    assert plan["basePrice"] == "4.5000" and plan["marginPercent"] == "12.2500" and plan["marginFixed"] == "0.0000"
    assert plan["cancelAtPeriodEnd"] is True and plan["minCommitmentDays"] == 0 and plan["noticeDays"] == 0
    assert plan["providerConfigDefaults"] == {} and plan["orderingHighlights"] == []
    assert plan["allowCustomerLocationSelection"] is False and plan["isActive"] is True
    assert plan["billingDayOfMonth"] is None and plan["description"] is None
    assert (await api.get(f"/service-plans/{plan['id']}", token=admin)).json() == plan

    bare = await create_plan(api, admin, service_type["id"], name="Free")
    assert bare["basePrice"] is None and bare["marginPercent"] is None and bare["marginFixed"] is None


async def test_partial_update_replaces_only_what_is_sent(api, admin):
    service_type = await create_type(api, admin)
    plan = await create_plan(api, admin, service_type["id"], basePrice="10", description="Old",
                             orderingHighlights=[{"icon": "a", "text": "one"}, {"icon": "b", "text": "two"}],
                             providerConfigDefaults={"serverType": "cx22"})
    updated = await api.post(f"/service-plans/{plan['id']}", token=admin,
                             json={"marginFixed": "1.5", "orderingHighlights": [{"icon": "c", "text": "three"}],
                                   "isActive": False, "billingIntervalType": "day", "billingIntervalValue": 7})
    assert updated.status_code == 200
    body = updated.json()
    assert body["marginFixed"] == "1.5000" and body["basePrice"] == "10.0000" and body["description"] == "Old"
    assert body["orderingHighlights"] == [{"icon": "c", "text": "three"}]
    assert body["providerConfigDefaults"] == {"serverType": "cx22"}
    assert body["isActive"] is False and body["billingIntervalType"] == "day" and body["billingIntervalValue"] == 7
    assert body["serviceTypeId"] == service_type["id"]
    # the service type cannot be changed
    assert_error(await api.post(f"/service-plans/{plan['id']}", token=admin, json={"serviceTypeId": service_type["id"]}), 400)


@pytest.mark.parametrize("fields, message", [
    ({"basePrice": 10}, None),  # a JSON number, not a decimal string
    ({"basePrice": "ten"}, "Base price must be a numeric string"),
    ({"basePrice": "1e3"}, "Base price must be a numeric string"),
    ({"marginPercent": "-1"}, "Margin percent must not be negative"),
    ({"basePrice": "-0"}, "Base price must not be negative"),
    ({"basePrice": " 5 "}, "Base price must be a numeric string"),
    ({"basePrice": "5\n"}, "Base price must be a numeric string"),
    ({"basePrice": "NaN"}, "Base price must be a numeric string"),
    ({"marginFixed": "0.00001"}, "Margin fixed must have at most 4 decimal places"),
    ({"basePrice": "100000000"}, "Base price must be less than 100000000"),
    ({"marginPercent": "10000"}, "Margin percent must be less than 10000"),
    ({"billingIntervalType": "year"}, None),
    ({"billingIntervalValue": 0}, None),
    ({"billingIntervalValue": 1001}, "billingIntervalValue must not be greater than 1000"),
    ({"billingDayOfMonth": 32}, None),
    ({"minCommitmentDays": -1}, "minCommitmentDays must not be less than 0"),
    ({"noticeDays": 10**12}, "noticeDays must not be greater than 36500"),
    ({"name": "  "}, "Name is required"),
    ({"name": "n" * 256}, "Name must be at most 255 characters"),
    ({"providerConfigDefaults": "fsn1"}, None),
    ({"orderingHighlights": [{"icon": "x"}]}, None),
    ({"orderingHighlights": [{"icon": "x", "text": "y", "color": "red"}]}, "orderingHighlights.0.property color should not exist"),
    ({"orderingHighlights": [{"icon": "x" * 129, "text": "y"}]}, None),
    ({"orderingHighlights": [{"icon": "x", "text": "y"}] * 51}, None),
    ({"isActive": "yes"}, None),
    ({"unknownField": 1}, None),
])
async def test_invalid_plans_are_rejected(api, admin, fields, message):
    service_type = await create_type(api, admin)
    body = {"serviceTypeId": service_type["id"], "name": "P", "billingIntervalType": "month", "billingIntervalValue": 1,
            **fields}
    assert_error(await api.post("/service-plans", token=admin, json=body), 400, message)
    assert (await api.get("/service-plans", token=admin)).json() == []


async def test_the_service_type_must_exist_in_the_tenant(api, admin):
    missing = str(uuid.uuid4())
    body = {"serviceTypeId": missing, "name": "P", "billingIntervalType": "month", "billingIntervalValue": 1}
    assert_error(await api.post("/service-plans", token=admin, json=body), 404, f"Service type with ID {missing} not found")
    assert_error(await api.post("/service-plans", token=admin, json={**body, "serviceTypeId": "nope"}), 400)
    assert_error(await api.post("/service-plans", token=admin, json={k: v for k, v in body.items() if k != "name"}), 400)


async def test_customer_location_selection_needs_a_geography_enum(api, admin):
    manual = await create_type(api, admin, key="manual")
    refused = await api.post("/service-plans", token=admin, json={
        "serviceTypeId": manual["id"], "name": "P", "billingIntervalType": "month", "billingIntervalValue": 1,
        "allowCustomerLocationSelection": True})
    assert_error(refused, 400, "allowCustomerLocationSelection requires region or location with a string enum on the "
                               "service type config schema or on the provider registered for this service type")

    # the type's own schema lists the regions
    with_enum = await create_type(api, admin, key="geo", configSchema=GEO_SCHEMA)
    assert (await create_plan(api, admin, with_enum["id"], allowCustomerLocationSelection=True))["allowCustomerLocationSelection"]
    # an empty enum or a non-string field does not count
    for schema in ({"properties": {"region": {"type": "string", "enum": []}}},
                   {"properties": {"location": {"type": "number", "enum": [1]}}}):
        odd = await create_type(api, admin, key=f"odd-{len(str(schema))}", configSchema=schema)
        assert_error(await api.post("/service-plans", token=admin, json={
            "serviceTypeId": odd["id"], "name": "P", "billingIntervalType": "month", "billingIntervalValue": 1,
            "allowCustomerLocationSelection": True}), 400)
    # the registered provider's schema counts too (hetzner: `location` enum; digital-ocean: `region` enum)
    for provider in ("hetzner", "digital-ocean"):
        cloud = await create_type(api, admin, key=provider, provider=provider)
        assert (await create_plan(api, admin, cloud["id"], allowCustomerLocationSelection=True))["allowCustomerLocationSelection"]

    # on update the rule applies when the flag is turned on
    plan = await create_plan(api, admin, manual["id"])
    assert_error(await api.post(f"/service-plans/{plan['id']}", token=admin, json={"allowCustomerLocationSelection": True}), 400)
    assert (await api.post(f"/service-plans/{plan['id']}", token=admin,
                           json={"allowCustomerLocationSelection": False})).status_code == 200


async def test_list_filters_before_paging(api, admin):
    first = await create_type(api, admin, key="first")
    second = await create_type(api, admin, key="second")
    a = await create_plan(api, admin, first["id"], name="A")
    b = await create_plan(api, admin, second["id"], name="B")
    c = await create_plan(api, admin, first["id"], name="C", isActive=False)
    assert [p["id"] for p in (await api.get("/service-plans", token=admin)).json()] == [c["id"], b["id"], a["id"]]
    # the reference filtered the fetched page: limit=1 would have returned nothing for the first type
    page = await api.get("/service-plans", token=admin, params={"serviceTypeId": first["id"], "limit": 1, "offset": 1})
    assert [p["id"] for p in page.json()] == [a["id"]]
    assert [p["id"] for p in (await api.get("/service-plans", token=admin, params={"limit": 0})).json()] == \
        [c["id"], b["id"], a["id"]]  # 0 = no limit
    assert_error(await api.get("/service-plans", token=admin, params={"serviceTypeId": "x"}), 400)
    assert_error(await api.get("/service-plans", token=admin, params={"offset": -1}), 400)
    assert (await api.get("/service-plans", token=admin, params={"offset": 10**15})).json() == []


async def test_delete_and_not_found(api, admin):
    service_type = await create_type(api, admin)
    plan = await create_plan(api, admin, service_type["id"])
    assert (await api.delete(f"/service-plans/{plan['id']}", token=admin)).status_code == 204
    message = f"Service plan with ID {plan['id']} not found"
    assert_error(await api.get(f"/service-plans/{plan['id']}", token=admin), 404, message)
    assert_error(await api.post(f"/service-plans/{plan['id']}", token=admin, json={"name": "x"}), 404, message)
    assert_error(await api.delete(f"/service-plans/{plan['id']}", token=admin), 404, message)
    assert_error(await api.get("/service-plans/xyz", token=admin), 400)


async def test_role_ladder_and_tenants(api, admin, user):
    service_type = await create_type(api, admin)
    plan = await create_plan(api, admin, service_type["id"])
    path = f"/service-plans/{plan['id']}"
    assert_error(await api.get("/service-plans"), 401)
    assert_error(await api.get(path), 401)
    assert (await api.get("/service-plans", token=user)).json()[0]["id"] == plan["id"]
    assert (await api.get(path, token=user)).status_code == 200
    body = {"serviceTypeId": service_type["id"], "name": "P", "billingIntervalType": "month", "billingIntervalValue": 1}
    assert_error(await api.post("/service-plans", token=user, json=body), 403, "Forbidden resource")
    assert_error(await api.post(path, token=user, json={"name": "x"}), 403, "Forbidden resource")
    assert_error(await api.delete(path, token=user), 403, "Forbidden resource")

    globex = await api.admin_token(tenant="globex")
    message = f"Service plan with ID {plan['id']} not found"
    assert_error(await api.get(path, token=globex, tenant="globex"), 404, message)
    assert_error(await api.post(path, token=globex, tenant="globex", json={"name": "x"}), 404, message)
    assert_error(await api.delete(path, token=globex, tenant="globex"), 404, message)
    assert (await api.get("/service-plans", token=globex, tenant="globex")).json() == []
    assert (await api.get(path, token=admin)).json()["name"] == "Starter"
