"""Usage records (behavior.md part B §5, D8): recording with the reference's validation and more, the summary
(the latest record), and billing — each record with a cost exactly once."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from decabill.errors import BadRequest
from decabill.invoicing import billing
from decabill.tenancy import bound_tenant
from decabill.usage.service import usage_cost
from models.invoicing import UsageRecord
from tests.helpers import assert_error
from tests.invoicing.conftest import customer_with_subscription, order, rows, user_id

JANUARY = {"periodStart": "2026-01-01T00:00:00Z", "periodEnd": "2026-02-01T00:00:00Z"}


@pytest.mark.parametrize("payload, cost", [
    ({"totalCost": 12.5, "usageCost": 3}, "12.50"), ({"usageCost": "3.335"}, "3.34"),
    ({"units": 3, "unitPrice": "0.125"}, "0.38"), ({"units": 3}, "0.00"), ({}, "0.00"),
    ({"totalCost": None, "usageCost": 2}, "2.00"), ({"totalCost": "-4"}, "-4.00"), ({"gigabytes": "x"}, "0.00"),
])
def test_the_cost_comes_from_the_payload(payload, cost):
    assert usage_cost(payload) == Decimal(cost)


@pytest.mark.parametrize("payload, message", [
    ({"totalCost": "NaN"}, "totalCost must be a numeric string"),
    ({"totalCost": "Infinity"}, "totalCost must be a numeric string"),
    ({"usageCost": "abc"}, "usageCost must be a numeric string"),
    ({"totalCost": "1e999999"}, "totalCost must be a numeric string"),
    ({"totalCost": " 5 "}, "totalCost must be a numeric string"),
    ({"totalCost": True}, "totalCost must be a number"),
    ({"unitPrice": "0.00001", "units": 1}, "unitPrice must have at most 4 decimal places"),
    ({"units": "x", "unitPrice": 2}, "units must be a numeric string"),
])
async def test_invalid_money_in_a_usage_payload_is_refused_never_stored_as_zero(billing_api, customer, plan, payload,
                                                                                 message):
    subscription = await order(billing_api, customer, plan["id"])
    response = await billing_api.post("/usage/record", token=customer, json={
        "subscriptionId": subscription["id"], **JANUARY, "usagePayload": payload})
    assert_error(response, 400, message)
    assert await rows(UsageRecord) == []


async def test_json_nan_and_infinity_literals_are_refused(billing_api, customer, plan):
    subscription = await order(billing_api, customer, plan["id"])
    for literal in ("NaN", "Infinity", "1e999999"):
        body = ('{"subscriptionId": "%s", "periodStart": "2026-01-01T00:00:00Z", "periodEnd": "2026-02-01T00:00:00Z",'
                ' "usagePayload": {"totalCost": %s}}' % (subscription["id"], literal))
        response = await billing_api.post("/usage/record", token=customer, content=body,
                                          headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (literal, response.text)
    assert await rows(UsageRecord) == []


def test_absurd_costs_are_refused():
    with pytest.raises(BadRequest, match="totalCost must be between"):
        usage_cost({"totalCost": 1e300})
    with pytest.raises(BadRequest):
        usage_cost({"units": 1e200, "unitPrice": 1e200})


async def test_record_and_summary(billing_api, admin, customer, plan):
    api = billing_api
    subscription = await order(api, customer, plan["id"])
    sid = subscription["id"]
    empty = (await api.get(f"/usage/summary/{sid}", token=customer)).json()
    assert empty == {"subscriptionId": sid, "periodStart": "1970-01-01T00:00:00Z",
                     "periodEnd": "1970-01-01T00:00:00Z", "usagePayload": {}}
    first = await api.post("/usage/record", token=customer,
                           json={"subscriptionId": sid, **JANUARY, "usagePayload": {"units": 10, "unitPrice": 0.5}})
    assert first.status_code == 200 and set(first.json()) == {"id"}
    second = await api.post("/usage/record", token=customer, json={
        "subscriptionId": sid, "periodStart": "2026-02-01t01:00:00+01:00", "periodEnd": "2026-03-01T00:00:00z",
        "usagePayload": {"gigabytes": 42, "nested": {"a": [1, 2]}}})
    assert second.status_code == 200
    summary = (await api.get(f"/usage/summary/{sid}", token=customer)).json()
    assert summary == {"subscriptionId": sid, "periodStart": "2026-02-01T00:00:00Z",
                       "periodEnd": "2026-03-01T00:00:00Z", "usagePayload": {"gigabytes": 42, "nested": {"a": [1, 2]}}}
    with bound_tenant("default"):
        stored = {str(r.id): r for r in await rows(UsageRecord)}
    assert stored[first.json()["id"]].amount == Decimal("5.00") and stored[first.json()["id"]].usage_source == "dataset"


async def test_record_usage_validation_and_ownership(billing_api, admin, customer, plan):
    api = billing_api
    subscription = await order(api, customer, plan["id"])
    sid = subscription["id"]

    def body(**changes):
        return {"subscriptionId": sid, **JANUARY, "usagePayload": {}, **changes}

    assert_error(await api.post("/usage/record", token=customer, json=body(periodEnd="2025-12-31T00:00:00Z")), 400,
                 "periodEnd must not be before periodStart")
    assert_error(await api.post("/usage/record", token=customer, json=body(usagePayload={"note": "a\u0000b"})), 400,
                 "usagePayload must not contain NUL characters")
    assert_error(await api.post("/usage/record", token=customer, json=body(usagePayload={"totalCost": 1e20})), 400)
    assert_error(await api.post("/usage/record", token=customer, json=body(extra=1)), 400)
    assert_error(await api.post("/usage/record", token=customer, json=body(subscriptionId="nope")), 400)
    missing = {k: v for k, v in body().items() if k != "usagePayload"}
    assert_error(await api.post("/usage/record", token=customer, json=missing), 400)
    unknown = str(uuid.uuid4())
    assert_error(await api.post("/usage/record", token=customer, json=body(subscriptionId=unknown)), 404,
                 f"Subscription with ID {unknown} not found")
    assert_error(await api.get(f"/usage/summary/{unknown}", token=customer), 404)
    other = await api.user_token(admin, "other@example.com")
    assert_error(await api.post("/usage/record", token=other, json=body()), 404, f"Subscription with ID {sid} not found")
    assert_error(await api.post("/usage/record", token=admin, json=body()), 404)  # admins record only their own
    with bound_tenant("default"):
        assert await rows(UsageRecord) == []


async def test_the_static_api_key_has_no_user(env, make_api):
    env.update(AUTHENTICATION_METHOD="api-key", STATIC_API_KEY="usage-key-123")
    api = await make_api()
    for path in ("/invoices/summary", "/invoices/open-overdue", f"/usage/summary/{uuid.uuid4()}",
                 f"/invoices/ref/{uuid.uuid4()}"):
        assert_error(await api.get(path, token="usage-key-123"), 400, "User not authenticated")
    assert_error(await api.post(f"/invoices/{uuid.uuid4()}", token="usage-key-123"), 400, "User not authenticated")


async def test_each_usage_record_is_billed_exactly_once(billing_api, admin, plan, clock):
    api = billing_api
    token, subscription = await customer_with_subscription(api, admin, plan["id"], "metered@example.com")

    async def record(cost: str) -> str:
        response = await api.post("/usage/record", token=token, json={
            "subscriptionId": subscription["id"], **JANUARY, "usagePayload": {"totalCost": cost}})
        assert response.status_code == 200
        return response.json()["id"]

    first = await record("7.50")
    await record("0")  # costs nothing: information only, never billed
    with bound_tenant("default"):
        [january] = (await billing.bill_user(user_id(token))).invoices
    second = await record("2.25")
    clock.set(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1))
    with bound_tenant("default"):
        [february] = (await billing.bill_user(user_id(token))).invoices
        assert (await billing.bill_user(user_id(token))).status == "nothing"
        billed = {str(r.id): r.invoice_id for r in await rows(UsageRecord)}
    assert billed[first] == january.id and billed[second] == february.id
    assert [r for r, invoice in billed.items() if invoice is None] != []  # the free record stays unbilled
    detail = (await api.get(f"/invoices/ref/{february.id}", token=token)).json()
    assert [(line["description"].split(",")[0], line["lineNet"]) for line in detail["lineItems"]] == \
        [(f"Usage {subscription['number']}", 2.25)]
    assert (await api.get("/invoices/summary", token=token)).json()["unbilledTotal"] == 0
