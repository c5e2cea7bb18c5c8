"""The "done when" scenario of the catalog issue, through the HTTP API only."""

from __future__ import annotations

from decimal import Decimal

from tests.catalog.conftest import create_plan, create_type


async def test_a_product_without_provider_is_offered_publicly_and_is_the_cheapest(api):
    admin = await api.admin_token()
    service_type = await create_type(api, admin, key="support", name="Support hours", provider="manual")
    plan = await create_plan(api, admin, service_type["id"], name="Basic support", basePrice="10", marginPercent="10",
                             marginFixed="2", orderingHighlights=[{"icon": "clock", "text": "Mon-Fri"}])

    offerings = await api.get("/public/service-plan-offerings")  # anonymous
    assert offerings.status_code == 200
    assert offerings.json() == [{
        "id": plan["id"], "name": "Basic support", "description": None, "serviceTypeId": service_type["id"],
        "serviceTypeName": "Support hours", "billingIntervalType": "month", "billingIntervalValue": 1,
        "totalPrice": 13, "orderingHighlights": [{"icon": "clock", "text": "Mon-Fri"}],
        "allowCustomerLocationSelection": False,
    }]
    cheapest = await api.get("/public/service-plan-offerings/cheapest")
    assert cheapest.status_code == 200 and cheapest.json()["id"] == plan["id"]


async def test_a_hetzner_backed_product_end_to_end(cloud_api):
    api = cloud_api
    admin = await api.admin_token()

    schema = (await api.get("/service-types/providers", token=admin)).json()[0]
    assert schema["id"] == "hetzner"
    service_type = await create_type(api, admin, key="controller", name="Agent controller", provider="hetzner",
                                     configSchema=schema["configSchema"])

    server_types = (await api.get("/service-types/providers/hetzner/server-types", token=admin)).json()
    cx22 = next(t for t in server_types if t["id"] == "cx22")
    # The fake's cx22 costs 3.79 EUR net a month in fsn1; Hetzner publishes gross prices (19 % VAT): 4.5101.
    assert cx22 == {"id": "cx22", "name": "CX22", "cores": 2, "memory": 4.0, "disk": 40, "priceMonthly": 4.5101,
                    "priceHourly": 0.00714, "description": "CX22"}
    assert "cx11" not in {t["id"] for t in server_types}  # deprecated

    check = {"serviceTypeId": service_type["id"], "region": "fsn1", "serverType": "cx22"}
    available = await api.post("/availability/check", token=admin, json=check)
    assert available.status_code == 200 and available.json() == {"isAvailable": True}

    elsewhere = await api.post("/availability/alternatives", token=admin, json={**check, "serverType": "cx32", "region": "hel1"})
    assert elsewhere.json() == {
        "isAvailable": False, "reason": "Server type not available in region",
        "alternatives": {"availableTypes": ["cpx11", "cx22"], "availableRegions": ["fsn1", "nbg1"]},
    }

    plan = await create_plan(api, admin, service_type["id"], name="Controller S", basePrice="5.00", marginPercent="20",
                             marginFixed="1.50", providerConfigDefaults={"serverType": "cx22", "location": "fsn1",
                                                                         "service": "controller"})
    preview = await api.post("/pricing/preview", token=admin, json={"planId": plan["id"]})
    assert preview.status_code == 200
    # basePriceFromField = serverType, so the base is cx22's monthly price, not the plan's 5.00:
    #   total = base + base * marginPercent / 100 + marginFixed = 4.5101 + 4.5101 * 20 / 100 + 1.50
    #         = 4.5101 + 0.90202 + 1.50 = 6.91212
    base = Decimal("4.5101")
    total = base + base * Decimal(20) / 100 + Decimal("1.50")
    assert total == Decimal("6.91212")
    assert preview.json() == {"basePrice": 4.5101, "marginPercent": 20, "marginFixed": 1.5, "totalPrice": float(total)}
