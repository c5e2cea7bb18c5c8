"""Key figures and turnover statistics against sums computed by hand, for a data set with two products, every
status and both tax rates, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from decabill import db
from decabill.invoicing import overdue
from decabill.tenancy import bound_tenant
from models.invoicing import UsageRecord
from tests.admin.conftest import BASE, action, add_position, create_draft, issue, line
from tests.catalog.conftest import create_plan
from tests.invoicing.conftest import complete_profile, customer_with_subscription, order, user_id

UTC = dt.timezone.utc


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


async def test_summary_and_statistics_match_hand_computed_sums(billing_api, admin, customer, plan, clock):
    api = billing_api
    consulting = await create_plan(api, admin, plan["serviceTypeId"], name="Consulting", basePrice="50.00")
    support_sub = await order(api, customer, plan["id"])  # product A: "Support hours"
    consulting_sub = await order(api, customer, consulting["id"])  # product B: "Consulting"
    second, second_sub = await customer_with_subscription(api, admin, plan["id"], "second@example.com")
    first_id, second_id = user_id(customer), user_id(second)

    async def manual(owner, lines, when: str, subscription: dict | None = None, *, due_in_days: int = 14) -> dict:
        clock.set(at(when))
        extra = {"subscriptionId": subscription["id"]} if subscription else {}
        draft = await create_draft(api, admin, owner, lines, **extra)
        return await issue(api, admin, draft["id"], dueInDays=due_in_days)

    # inv1  A  2 × 30.00 @19 %                       net 60.00   tax 11.40           gross  71.40   issued
    inv1 = await manual(first_id, [line("Support", 2, 30)], "2026-03-02T10:00:00", support_sub)
    # inv2  B  1 × 100.00 @7 % + 3 × 12.50 @19 %      net 137.50  tax 7.00 + 7.13     gross 151.63   paid
    inv2 = await manual(first_id, [line("Workshop", 1, 100, "reduced"), line("Travel", 3, 12.5)],
                        "2026-03-02T15:30:00", consulting_sub)
    # inv3  A  1 × 49.99 @19 %                        net 49.99   tax 9.50            gross  59.49   paid (2nd user)
    inv3 = await manual(second_id, [line("Support", 1, 49.99)], "2026-03-15T08:00:00", second_sub)
    # inv4  —  1 × 200.00 @7 %, no subscription       net 200.00  tax 14.00           gross 214.00   issued (2nd user)
    await manual(second_id, [line("Books", 1, 200, "reduced")], "2026-04-01T00:00:00")
    # inv5  B  1 × 10.00 @19 %                                                       gross  11.90   void → not counted
    inv5 = await manual(first_id, [line("Mistake", 1, 10)], "2026-03-20T12:00:00", consulting_sub)
    # inv6  A  draft                                                                  not counted
    clock.set(at("2026-03-21T12:00:00"))
    await create_draft(api, admin, first_id, [line("Draft", 1, 999)], subscriptionId=support_sub["id"])
    # inv7  A  1 × 5.00 @19 %, issued before the range                                 gross   5.95   issued
    await manual(first_id, [line("Early", 1, 5)], "2026-02-28T23:59:59", support_sub)
    # inv8  B  1 × 20.00 @7 %, last second of the range, then overdue                  gross  21.40   overdue (2nd user's
    #          invoice for the first user's subscription is impossible, so: first user)
    inv8 = await manual(first_id, [line("Late", 1, 20, "reduced")], "2026-04-30T23:59:59.999999", consulting_sub,
                        due_in_days=1)
    # inv9  A  1 × 1.00 @19 %, first instant after the range                            gross   1.19   issued
    await manual(first_id, [line("After", 1, 1)], "2026-05-01T00:00:00", support_sub)

    clock.set(at("2026-05-20T09:00:00"))
    await action(api, admin, inv2["id"], "mark-paid")
    await action(api, admin, inv3["id"], "mark-paid")
    await action(api, admin, inv5["id"], "void")
    with bound_tenant("default"):
        assert await overdue.mark_overdue(uuid.UUID(inv8["id"])) == "overdue"
    clock.now = None

    # another tenant's turnover never shows
    acme_admin = await api.admin_token("admin@acme.example", tenant="acme")
    acme_user = await api.user_token(acme_admin, "buyer@acme.example", tenant="acme")
    await complete_profile(api, acme_user, tenant="acme", email="buyer@acme.example")
    clock.set(at("2026-03-02T11:00:00"))
    acme_draft = await create_draft(api, acme_admin, user_id(acme_user), [line("Acme", 1, 1000)], tenant="acme")
    await issue(api, acme_admin, acme_draft["id"], tenant="acme")
    clock.now = None

    # unbilled: an open position 12.3456 + a usage record 0.50 (+ a worthless one) = 12.8456 → 12.85
    await add_position(support_sub, first_id, "12.3456")
    async with db.transaction() as session:
        for amount in ("0.50", "0"):
            session.add(UsageRecord(tenant_id="default", subscription_id=uuid.UUID(consulting_sub["id"]), user_id=first_id,
                                    period_start=at("2026-05-01T00:00:00"), period_end=at("2026-05-02T00:00:00"),
                                    usage_payload={"totalCost": amount}, amount=Decimal(amount)))

    summary = (await api.get(f"{BASE}/summary", token=admin)).json()
    # open: inv1 71.40 + inv4 214.00 + inv7 5.95 + inv8 21.40 + inv9 1.19 = 313.94
    assert summary == {"activeSubscriptionsCount": 3, "openOverdueCount": 5, "openOverdueTotal": 313.94,
                       "unbilledTotal": 12.85}

    window = "from=2026-03-01&to=2026-04-30"
    daily = (await api.get(f"{BASE}/statistics/summary?{window}", token=admin)).json()
    assert daily == {
        "series": [{"period": "2026-03-02", "totalGross": 223.03},  # 71.40 + 151.63
                   {"period": "2026-03-15", "totalGross": 59.49},
                   {"period": "2026-04-01", "totalGross": 214.0},
                   {"period": "2026-04-30", "totalGross": 21.4}],
        "totalGross": 517.92, "paidCount": 2, "from": "2026-03-01", "to": "2026-04-30", "groupBy": "day"}
    monthly = (await api.get(f"{BASE}/statistics/summary?{window}&groupBy=month", token=admin)).json()
    assert monthly["series"] == [{"period": "2026-03-01", "totalGross": 282.52},  # 223.03 + 59.49
                                 {"period": "2026-04-01", "totalGross": 235.4}]  # 214.00 + 21.40
    assert (monthly["totalGross"], monthly["paidCount"], monthly["groupBy"]) == (517.92, 2, "month")
    second_only = (await api.get(f"{BASE}/statistics/summary?{window}&userId={second_id}", token=admin)).json()
    assert second_only["series"] == [{"period": "2026-03-15", "totalGross": 59.49},
                                     {"period": "2026-04-01", "totalGross": 214.0}]
    assert (second_only["totalGross"], second_only["paidCount"]) == (273.49, 1)

    by_product = (await api.get(f"{BASE}/statistics/by-product?{window}", token=admin)).json()
    assert by_product == {
        "items": [{"planId": consulting["id"], "planName": "Consulting", "totalGross": 173.03},  # 151.63 + 21.40
                  {"planId": plan["id"], "planName": "Support hours", "totalGross": 130.89}],  # 71.40 + 59.49
        "totalGross": 303.92, "from": "2026-03-01", "to": "2026-04-30"}
    mine = (await api.get(f"{BASE}/statistics/by-product?{window}&userId={first_id}", token=admin)).json()
    assert [(i["planName"], i["totalGross"]) for i in mine["items"]] == [("Consulting", 173.03), ("Support hours", 71.4)]
    # one day: only inv1 and inv2
    day = (await api.get(f"{BASE}/statistics/by-product?from=2026-03-02&to=2026-03-02", token=admin)).json()
    assert [(i["planName"], i["totalGross"]) for i in day["items"]] == [("Consulting", 151.63), ("Support hours", 71.4)]
    assert inv1["status"] == "issued"


async def test_statistics_defaults_to_the_last_30_days(billing_api, admin, customer, clock):
    api = billing_api
    today = dt.datetime.now(UTC).date()
    for days_ago, price in ((0, 10), (30, 20), (31, 40)):
        clock.set(dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(12), UTC))
        draft = await create_draft(api, admin, user_id(customer), [line("Work", 1, price)])
        await issue(api, admin, draft["id"])
    clock.now = None
    result = (await api.get(f"{BASE}/statistics/summary", token=admin)).json()
    assert (result["from"], result["to"], result["groupBy"]) == (
        (today - dt.timedelta(days=30)).isoformat(), today.isoformat(), "day")
    assert result["totalGross"] == 35.7  # 11.90 + 23.80; the 31-day-old one is out
    empty = (await api.get(f"{BASE}/statistics/by-product", token=admin)).json()
    assert empty["items"] == [] and empty["totalGross"] == 0  # manual invoices without subscription
