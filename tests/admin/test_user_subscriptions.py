"""GET /admin/billing/users/{userId}/subscriptions: an admin reads one user's subscriptions (the reference's
console fills the manual-invoice subscription picker with it). Every response here is validated against the
spec by the `api` fixture (DECABILL_VALIDATE_RESPONSES)."""

from __future__ import annotations

import datetime as dt
import uuid

from decabill import db
from models.subscriptions import Subscription
from tests.admin.conftest import BASE
from tests.helpers import assert_error
from tests.invoicing.conftest import customer_with_subscription, manual_plan, order, user_id

UNKNOWN = "00000000-0000-4000-8000-00000000beef"
START = dt.datetime(2026, 6, 1, 9, tzinfo=dt.timezone.utc)


def path(owner) -> str:
    return f"{BASE}/users/{owner}/subscriptions"


async def listed(api, admin: str, owner, *, tenant: str | None = None, **params) -> list[dict]:
    response = await api.get(path(owner), token=admin, tenant=tenant, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_users_subscriptions_newest_first_as_the_user_sees_them(billing_api, admin, customer, plan, clock):
    api = billing_api
    mine = []
    for hour in range(3):
        clock.set(START + dt.timedelta(hours=hour))
        mine.append(await order(api, customer, plan["id"]))
    clock.set(START + dt.timedelta(days=1))
    canceled = await api.post(f"/subscriptions/{mine[1]['id']}/cancel", token=customer, json={})
    assert canceled.status_code == 200 and canceled.json()["status"] == "pending_cancel", canceled.text
    await customer_with_subscription(api, admin, plan["id"], "second@example.com")  # someone else's
    clock.now = None

    found = await listed(api, admin, user_id(customer))
    assert [s["id"] for s in found] == [s["id"] for s in mine[::-1]]
    assert [s["status"] for s in found] == ["active", "pending_cancel", "active"]
    # exactly the objects the user reads through GET /subscriptions
    own = (await api.get("/subscriptions?limit=0", token=customer)).json()
    assert found == own
    assert {s["userId"] for s in found} == {str(user_id(customer))}


async def test_pagination(billing_api, admin, customer, plan, clock):
    api = billing_api
    made = []
    for hour in range(5):
        clock.set(START + dt.timedelta(hours=hour))
        made.append((await order(api, customer, plan["id"]))["id"])
    clock.now = None
    newest_first = made[::-1]
    owner = user_id(customer)

    async def ids(**params) -> list[str]:
        return [s["id"] for s in await listed(api, admin, owner, **params)]

    assert await ids() == newest_first
    assert await ids(limit=2) == newest_first[:2]
    assert await ids(limit=2, offset=2) == newest_first[2:4]
    assert await ids(limit=2, offset=4) == newest_first[4:]
    assert await ids(offset=3) == newest_first[3:]
    assert await ids(offset=5) == []
    assert await ids(limit=0) == newest_first  # 0: all, as on every list of the contract
    for bad in ({"limit": -1}, {"offset": -1}, {"limit": "ten"}, {"offset": "1.5"}):
        assert_error(await api.get(path(owner), token=admin, params=bad), 400)


async def test_a_hundred_per_page_by_default(billing_api, admin, customer, plan):
    """101 subscriptions (written straight to the table: ordering 101 times would only slow the suite)."""
    owner = user_id(customer)
    numbers = [f"SUB-T{index:04d}" for index in range(101)]
    async with db.transaction() as session:
        for index, number in enumerate(numbers):
            session.add(Subscription(tenant_id="default", number=number, plan_id=uuid.UUID(plan["id"]),
                                     user_id=owner, status="active", created_at=START + dt.timedelta(minutes=index)))
    first = await listed(billing_api, admin, owner)
    assert [s["number"] for s in first] == numbers[:0:-1]  # the 100 newest
    assert [s["number"] for s in await listed(billing_api, admin, owner, offset=100)] == numbers[:1]
    assert len(await listed(billing_api, admin, owner, limit=0)) == 101


async def test_auth_ladder(billing_api, admin, customer, plan):
    api = billing_api
    await order(api, customer, plan["id"])
    own = path(user_id(customer))
    assert_error(await api.get(own), 401)
    assert_error(await api.get(own, token="not-a-jwt"), 401)
    assert_error(await api.get(own, token=customer), 403, "Forbidden resource")  # not even one's own
    assert_error(await api.get(path("not-a-uuid"), token=admin), 400, "Validation failed (uuid v 4 is expected)")
    assert_error(await api.get(path("not-a-uuid"), token=customer), 400)  # malformed before the role check
    assert_error(await api.get(own, token=admin, tenant="evil"), 400)
    assert_error(await api.get(own, tenant="evil"), 400)  # the tenant is refused before authentication
    assert len(await listed(api, admin, user_id(customer))) == 1


async def test_another_tenants_user_has_none_here(billing_api, admin, customer, plan):
    api = billing_api
    subscription = await order(api, customer, plan["id"])
    acme_admin = await api.admin_token("admin@acme.example", tenant="acme")
    acme_plan = await manual_plan(api, acme_admin, tenant="acme")
    acme_customer, acme_subscription = await customer_with_subscription(api, acme_admin, acme_plan["id"],
                                                                        "buyer@acme.example", tenant="acme")

    # each admin sees the subscriptions of its own tenant's user, the other tenant's user has none
    assert [s["id"] for s in await listed(api, admin, user_id(customer))] == [subscription["id"]]
    assert [s["id"] for s in await listed(api, acme_admin, user_id(acme_customer), tenant="acme")] == [
        acme_subscription["id"]]
    assert await listed(api, acme_admin, user_id(customer), tenant="acme") == []
    assert await listed(api, admin, user_id(acme_customer)) == []
    # an unknown user is the same empty list, not a 404
    assert await listed(api, admin, UNKNOWN) == []
    # a token of one tenant is not accepted in another
    assert_error(await api.get(path(user_id(customer)), token=acme_admin), 401)
