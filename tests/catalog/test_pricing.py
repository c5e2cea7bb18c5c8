"""Price previews (behavior.md part A §4.4): exact decimals, the plan's own price or the provider's price
when the service type's schema names a `basePriceFromField`."""

from __future__ import annotations

import uuid
from decimal import Decimal

from tests.catalog.conftest import create_plan, create_type
from tests.helpers import assert_error

PRICED_BY_SERVER_TYPE = {"basePriceFromField": "serverType",
                         "properties": {"location": {"type": "string", "enum": ["fsn1", "nbg1", "hel1"]}}}


async def _preview(api, token, **body) -> dict:
    response = await api.post("/pricing/preview", token=token, json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_formula_on_the_plans_own_price(api, admin, user):
    service_type = await create_type(api, admin)
    plan = await create_plan(api, admin, service_type["id"], basePrice="10", marginPercent="10", marginFixed="2")
    # total = base + base * pct / 100 + fixed = 10 + 10 * 10 / 100 + 2 = 13 (the reference's example)
    assert await _preview(api, user, planId=plan["id"]) == {"basePrice": 10, "marginPercent": 10, "marginFixed": 2,
                                                            "totalPrice": 13}
    # exact decimals: 0.1 + 0.1 * 33.3333 / 100 + 0.2 = 0.3333333 (floats would drift)
    odd = await create_plan(api, admin, service_type["id"], basePrice="0.1", marginPercent="33.3333", marginFixed="0.2")
    assert Decimal("0.1") + Decimal("0.1") * Decimal("33.3333") / 100 + Decimal("0.2") == Decimal("0.3333333")
    assert (await _preview(api, user, planId=odd["id"]))["totalPrice"] == 0.3333333
    # missing parts count as 0; requestedConfig does not matter without basePriceFromField
    bare = await create_plan(api, admin, service_type["id"], marginFixed="3")
    assert await _preview(api, admin, planId=bare["id"], requestedConfig={"serverType": "cx22"}) == {
        "basePrice": 0, "marginPercent": 0, "marginFixed": 3, "totalPrice": 3}
    # the public catalog shows the same total
    offerings = {o["id"]: o["totalPrice"] for o in (await api.get("/public/service-plan-offerings")).json()}
    assert offerings == {plan["id"]: 13, odd["id"]: 0.3333333, bare["id"]: 3}


async def test_without_a_plan_everything_is_zero(api, admin):
    zero = {"basePrice": 0, "marginPercent": 0, "marginFixed": 0, "totalPrice": 0}
    assert await _preview(api, admin) == zero
    assert await _preview(api, admin, requestedConfig={"serverType": "cx22"}) == zero
    missing = str(uuid.uuid4())
    assert_error(await api.post("/pricing/preview", token=admin, json={"planId": missing}), 404,
                 f"Service plan with ID {missing} not found")
    assert_error(await api.post("/pricing/preview", token=admin, json={"planId": "plan-1"}), 400)
    assert_error(await api.post("/pricing/preview", token=admin, json={"requestedConfig": []}), 400)
    assert_error(await api.post("/pricing/preview", json={}), 401)


async def test_base_price_from_the_server_type(cloud_api, fake_cloud):
    api = cloud_api
    admin = await api.admin_token()
    service_type = await create_type(api, admin, provider="hetzner", configSchema=PRICED_BY_SERVER_TYPE)
    defaults = {"serverType": "cx22", "location": "fsn1"}
    plan = await create_plan(api, admin, service_type["id"], basePrice="99", marginPercent="10", marginFixed="1",
                             providerConfigDefaults=defaults)

    # month: cx22's gross monthly price in fsn1, 4.5101; total = 4.5101 + 4.5101 * 10 / 100 + 1 = 5.96111
    assert await _preview(api, admin, planId=plan["id"]) == {"basePrice": 4.5101, "marginPercent": 10, "marginFixed": 1,
                                                             "totalPrice": 5.96111}
    # the requested size is laid over the plan's defaults: cx32 = 8.092; 8.092 + 0.8092 + 1 = 9.9012
    assert (await _preview(api, admin, planId=plan["id"], requestedConfig={"serverType": "cx32"}))["totalPrice"] == 9.9012
    # the public catalog prices like the preview (not the plan's stored 99 + 9.9 + 1)
    assert (await api.get("/public/service-plan-offerings")).json()[0]["totalPrice"] == 5.96111
    assert (await api.get("/public/service-plan-offerings/cheapest")).json()["totalPrice"] == 5.96111

    # hour: the hourly price x interval value: 3 x 0.00714 = 0.02142; + 10 % + 1 = 1.023562
    hourly = await create_plan(api, admin, service_type["id"], billingIntervalType="hour", billingIntervalValue=3,
                               marginPercent="10", marginFixed="1", providerConfigDefaults=defaults)
    assert await _preview(api, admin, planId=hourly["id"]) == {"basePrice": 0.02142, "marginPercent": 10,
                                                               "marginFixed": 1, "totalPrice": 1.023562}
    # day: 24 hourly prices a day: 2 x 24 x 0.00714 = 0.34272
    daily = await create_plan(api, admin, service_type["id"], billingIntervalType="day", billingIntervalValue=2,
                              providerConfigDefaults=defaults)
    assert (await _preview(api, admin, planId=daily["id"]))["basePrice"] == 0.34272

    # a size the provider does not sell
    assert_error(await api.post("/pricing/preview", token=admin, json={"planId": plan["id"], "requestedConfig": {"serverType": "cx99"}}),
                 400, "Server type cx99 is not offered by Hetzner Cloud")
    # no size chosen at all: the plan's own base price
    unsized = await create_plan(api, admin, service_type["id"], basePrice="7")
    assert (await _preview(api, admin, planId=unsized["id"]))["basePrice"] == 7


async def test_the_location_price_counts_where_customers_may_choose_it(env, make_api, fake_cloud):
    # Real Hetzner prices differ by location; the fake prices all locations alike, so make nbg1 dearer.
    fake_cloud.reset()
    env.update(HETZNER_API_TOKEN=fake_cloud.hetzner_token, HETZNER_API_URL=fake_cloud.hetzner_url, PROVIDER_MAX_RETRIES="0")
    from tests.fakes import hetzner as fake

    original = fake.SERVER_TYPES["cx22"]["prices"]
    fake.SERVER_TYPES["cx22"]["prices"] = [dict(p) for p in original]
    fake.SERVER_TYPES["cx22"]["prices"][1]["price_monthly"] = {"net": "5.0000000000", "gross": "5.9500000000"}
    try:
        api = await make_api()
        admin = await api.admin_token()
        service_type = await create_type(api, admin, provider="hetzner", configSchema=PRICED_BY_SERVER_TYPE)
        choosing = await create_plan(api, admin, service_type["id"], allowCustomerLocationSelection=True,
                                     providerConfigDefaults={"serverType": "cx22", "location": "fsn1"})
        fixed = await create_plan(api, admin, service_type["id"], name="Fixed",
                                  providerConfigDefaults={"serverType": "cx22", "location": "fsn1"})
        nbg1 = {"location": "nbg1"}
        assert (await _preview(api, admin, planId=choosing["id"]))["basePrice"] == 4.5101
        assert (await _preview(api, admin, planId=choosing["id"], requestedConfig=nbg1))["basePrice"] == 5.95
        assert (await _preview(api, admin, planId=fixed["id"], requestedConfig=nbg1))["basePrice"] == 4.5101
    finally:
        fake.SERVER_TYPES["cx22"]["prices"] = original


async def test_provider_pricing_needs_the_provider(api, admin):
    service_type = await create_type(api, admin, provider="hetzner", configSchema=PRICED_BY_SERVER_TYPE)
    plan = await create_plan(api, admin, service_type["id"], basePrice="5", providerConfigDefaults={"serverType": "cx22"})
    assert_error(await api.post("/pricing/preview", token=admin, json={"planId": plan["id"]}), 400,
                 "HETZNER_API_TOKEN environment variable is not set")
    # a product without a registered provider has no server types to price from: its own price applies
    manual = await create_type(api, admin, key="manual", provider="manual", configSchema=PRICED_BY_SERVER_TYPE)
    manual_plan = await create_plan(api, admin, manual["id"], basePrice="5", providerConfigDefaults={"serverType": "cx22"})
    assert (await _preview(api, admin, planId=manual_plan["id"]))["totalPrice"] == 5


async def test_a_server_type_without_a_schema_is_priced_by_its_provider_everywhere(cloud_api, fake_cloud):
    """The spec's own example: a `hetzner` type created without `configSchema`. Its plans are priced from the
    provider's server type — preview, offerings, cheapest and the order agree; never 0."""
    api = cloud_api
    admin = await api.admin_token()
    service_type = await create_type(api, admin, provider="hetzner")
    assert service_type["configSchema"]["basePriceFromField"] == "serverType"
    assert "serverType" in service_type["configSchema"]["required"]
    plan = await create_plan(api, admin, service_type["id"], marginPercent="10", marginFixed="1",
                             providerConfigDefaults={"serverType": "cx22", "location": "fsn1", "service": "controller"})
    preview = await _preview(api, admin, planId=plan["id"])
    assert preview["basePrice"] == 4.5101 and preview["totalPrice"] == 5.96111
    [offering] = (await api.get("/public/service-plan-offerings")).json()
    cheapest = (await api.get("/public/service-plan-offerings/cheapest")).json()
    assert offering["totalPrice"] == cheapest["totalPrice"] == preview["totalPrice"]
    # the public catalogue reads the provider's prices through its cache: a second listing asks nothing
    asked = len([r for r in fake_cloud.hetzner.requests if r["path"].endswith("/server_types")])
    await api.get("/public/service-plan-offerings")
    assert len([r for r in fake_cloud.hetzner.requests if r["path"].endswith("/server_types")]) == asked
    # a provider product type without a provider schema keeps an empty one
    manual = await create_type(api, admin, key="support", provider="manual")
    assert manual["configSchema"] == {}


async def test_a_server_plan_that_cannot_be_priced_is_refused_never_sold_at_zero(cloud_api):
    api = cloud_api
    admin = await api.admin_token()
    fixed = {"properties": {"location": {"type": "string", "enum": ["fsn1"]}}}  # deliberately no basePriceFromField
    service_type = await create_type(api, admin, provider="hetzner", configSchema=fixed)
    body = {"serviceTypeId": service_type["id"], "name": "Free server", "billingIntervalType": "month",
            "billingIntervalValue": 1, "marginFixed": "1", "providerConfigDefaults": {"serverType": "cx22"}}
    message = ("Service plan 'Free server' cannot be priced: its service type's configSchema names no "
               "basePriceFromField, so the plan needs a basePrice greater than 0")
    assert_error(await api.post("/service-plans", token=admin, json=body), 400, message)
    assert_error(await api.post("/service-plans", token=admin, json={**body, "basePrice": "0"}), 400, message)
    # the operator's deliberate price is used as it is
    plan = await create_plan(api, admin, service_type["id"], **{**body, "basePrice": "10"})
    assert (await _preview(api, admin, planId=plan["id"]))["totalPrice"] == 11
    assert_error(await api.post(f"/service-plans/{plan['id']}", token=admin, json={"basePrice": "0"}), 400,
                 message.replace("Free server", plan["name"]))
    # a type whose schema changed later: its plans drop out of the catalogue and are refused by the preview
    priced = await create_type(api, admin, key="priced", provider="hetzner", configSchema=PRICED_BY_SERVER_TYPE)
    unsized = await create_plan(api, admin, priced["id"], name="Unsized", marginFixed="1")
    assert_error(await api.post("/pricing/preview", token=admin, json={"planId": unsized["id"]}), 400,
                 "Service plan 'Unsized' cannot be priced: no serverType is chosen, so the provider cannot price it, "
                 "and the plan has no basePrice greater than 0")
    listed = {o["id"] for o in (await api.get("/public/service-plan-offerings")).json()}
    assert listed == {plan["id"]}
