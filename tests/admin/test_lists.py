"""Admin invoice lists (all statuses; the deprecated open/overdue list with D17's filter), search and paging, and a
payment received through the payments area's settlement path next to the admin's corrections."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from decabill import db
from decabill.invoicing import invoices as invoicing_invoices
from decabill.invoicing import overdue
from decabill.payments import settlement
from decabill.tenancy import bound_tenant
from tests.admin.conftest import BASE, action, audit, create_draft, issue, line, processes
from tests.invoicing.conftest import complete_profile, customer_with_subscription, order, user_id


async def test_lists_search_and_paging(billing_api, admin, customer, plan, clock):
    api = billing_api
    subscription = await order(api, customer, plan["id"])
    second, _ = await customer_with_subscription(api, admin, plan["id"], "second@example.com")
    first_id, second_id = user_id(customer), user_id(second)
    start = dt.datetime(2026, 6, 1, 9, tzinfo=dt.timezone.utc)

    made = []
    for index, (owner, extra) in enumerate([(first_id, {"subscriptionId": subscription["id"]}), (first_id, {}),
                                            (second_id, {}), (second_id, {}), (first_id, {})]):
        clock.set(start + dt.timedelta(hours=index))
        made.append(await create_draft(api, admin, owner, [line(f"Item {index}", 1, 10 * (index + 1))], **extra))
    clock.set(start + dt.timedelta(days=1))
    issued = [await issue(api, admin, made[i]["id"], dueInDays=1) for i in range(4)]  # made[4] stays a draft
    await action(api, admin, made[1]["id"], "mark-paid")
    await action(api, admin, made[2]["id"], "void")
    clock.set(start + dt.timedelta(days=5))
    with bound_tenant("default"):
        assert await overdue.mark_overdue(uuid.UUID(made[3]["id"])) == "overdue"
    clock.now = None
    ids = [m["id"] for m in made]

    page = (await api.get(f"{BASE}/invoices", token=admin)).json()
    assert (page["total"], page["limit"], page["offset"]) == (5, 10, 0)
    assert [item["id"] for item in page["items"]] == ids[::-1]  # newest first
    assert [item["status"] for item in page["items"]] == ["draft", "overdue", "void", "paid", "issued"]
    oldest = page["items"][-1]
    assert oldest["subscriptionNumber"] == subscription["number"] and oldest["subscriptionId"] == subscription["id"]
    assert oldest["userEmail"] == "customer@example.com" and oldest["userId"] == str(first_id)
    assert page["items"][2]["voidDocumentNumber"] == f"{issued[2]['invoiceNumber']}-CN"

    paged = (await api.get(f"{BASE}/invoices?limit=2&offset=1", token=admin)).json()
    assert [item["id"] for item in paged["items"]] == [ids[3], ids[2]] and paged["total"] == 5
    assert (paged["limit"], paged["offset"]) == (2, 1)
    first = (await api.get(f"{BASE}/invoices?limit=2", token=admin)).json()  # a first page: its limit in the SQL
    assert [item["id"] for item in first["items"]] == [ids[4], ids[3]] and first["total"] == 5
    assert len((await api.get(f"{BASE}/invoices?limit=0", token=admin)).json()["items"]) == 5

    async def search(term: str, *, path: str = "/invoices", **params) -> list[str]:
        response = await api.get(f"{BASE}{path}", token=admin, params={"search": term, "limit": 0, **params})
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await search(issued[1]["invoiceNumber"].lower()) == [ids[1]]
    assert await search(subscription["number"][-4:]) == [ids[0]]
    assert await search("SECOND@EXAMPLE") == [ids[3], ids[2]]
    assert await search(ids[4][4:20].upper()) == [ids[4]]  # across the id's dashes
    assert await search(ids[1].upper()) == [ids[1]]  # a whole invoice id
    assert set(await search(str(second_id))) == {ids[3], ids[2]}  # a whole user id: that user's invoices
    assert set(await search(str(second_id)[9:23])) == {ids[3], ids[2]}
    assert await search("%") == [] and await search("_") == []  # no SQL wildcards
    assert await search("  ") == ids[::-1]  # blank: no filter
    assert await search("", userId=str(second_id)) == [ids[3], ids[2]]
    assert await search("second", userId=str(first_id)) == []

    # the deprecated list: only what is still owed (D17), same search and paging
    open_page = (await api.get(f"{BASE}/invoices/open-overdue", token=admin)).json()
    assert [(item["id"], item["status"]) for item in open_page["items"]] == [(ids[3], "overdue"), (ids[0], "issued")]
    assert open_page["total"] == 2
    assert await search("second", path="/invoices/open-overdue") == [ids[3]]


async def test_a_processor_payment_and_the_admins_corrections_share_one_path(billing_api, admin, customer):
    api = billing_api
    draft = await create_draft(api, admin, user_id(customer), [line("Hosting", 1, 100)])
    invoice = await issue(api, admin, draft["id"])
    # 50.00 of 119.00 arrive through the payment processor (the webhook's settlement call)
    with bound_tenant("default"):
        async with db.transaction() as session:
            locked = await invoicing_invoices.locked(session, uuid.UUID(invoice["id"]))
            outcome = await settlement.record_payment(session, locked, amount=Decimal("50.00"), currency="EUR",
                                                      processor="stripe", external_id="cs_test_1")
    assert outcome == settlement.PaymentOutcome.PARTIALLY_PAID
    listed = (await api.get(f"{BASE}/invoices/open-overdue", token=admin)).json()["items"]
    assert [(i["status"], i["balance"]) for i in listed] == [("partially_paid", 69.0)]

    paid = await action(api, admin, invoice["id"], "mark-paid", reason="rest paid in cash")
    assert paid["status"] == "paid" and paid["balance"] == 0
    trail = await audit(api, admin, invoice["id"])
    assert trail[0]["process"] == "invoice.mark_paid_manual"
    assert trail[0]["context"]["previousStatus"] == "partially_paid"
    assert Decimal(trail[0]["context"]["previousBalanceDue"]) == Decimal("69.00")
    assert (trail[1]["context"]["statusBefore"], trail[1]["context"]["statusAfter"]) == ("issued", "partially_paid")
    reopened = await action(api, admin, invoice["id"], "mark-unpaid")
    assert reopened["status"] == "issued" and reopened["balance"] == 119.0
    assert processes(await audit(api, admin, invoice["id"]))[0] == "invoice.mark_unpaid_manual"


async def test_search_by_whole_ids_and_totals_past_the_last_match(billing_api, admin, customer, clock):
    """A whole uuid finds that invoice (or that owner's invoices) by equality; a term no id can hold (not only hex
    digits and dashes) matches no id; a page past the last match is empty but still carries the total."""
    api = billing_api
    owner = user_id(customer)
    made = []
    for n in range(3):
        clock.set(dt.datetime(2026, 6, 1, 9 + n, tzinfo=dt.timezone.utc))
        made.append((await create_draft(api, admin, owner, [line(f"Item {n}", 1, 10)]))["id"])
    clock.now = None

    async def listed(**params) -> tuple[list[str], int]:
        response = await api.get(f"{BASE}/invoices", token=admin, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        return [item["id"] for item in body["items"]], body["total"]

    assert await listed(search=made[1]) == ([made[1]], 1)
    assert await listed(search=f" {made[1].upper()} ") == ([made[1]], 1)
    assert await listed(search=str(owner)) == (made[::-1], 3)
    assert await listed(search=str(uuid.uuid4())) == ([], 0)
    assert await listed(search=made[2][:8]) == ([made[2]], 1)  # a hex fragment still matches the id's text
    assert await listed(search=made[2][:8] + "z") == ([], 0)  # not hex: no id branch
    assert await listed(search="customer@example", limit=2) == (made[:0:-1], 3)
    assert await listed(search="customer@example", limit=2, offset=2) == ([made[0]], 3)
    assert await listed(search="customer@example", limit=2, offset=7) == ([], 3)
    assert await listed(userId=str(owner), limit=1, offset=3) == ([], 3)
    assert await listed(search="nobody-at-all", offset=4) == ([], 0)


async def test_search_by_an_invoice_number_prefix(billing_api, admin, customer, clock):
    """A term starting with `INV-` is matched as a prefix of the invoice number (a range on its own index) and finds
    exactly what the same term inside a number finds: every number starting with it, in any case, no draft."""
    api = billing_api
    owner = user_id(customer)
    made, numbers = [], {}
    for n in range(11):
        clock.set(dt.datetime(2026, 6, 1, 9, n, tzinfo=dt.timezone.utc))
        draft = await create_draft(api, admin, owner, [line(f"Item {n}", 1, 10)])
        made.append(draft["id"])
        if n < 10:  # the last one stays a draft: no number
            numbers[draft["id"]] = (await issue(api, admin, draft["id"], dueInDays=1))["invoiceNumber"]
    clock.now = None

    async def search(term: str) -> list[str]:
        response = await api.get(f"{BASE}/invoices", token=admin, params={"search": term, "limit": 0})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(body["items"])
        return [item["id"] for item in body["items"]]

    def starting_with(prefix: str) -> list[str]:
        return [i for i in made[::-1] if i in numbers and numbers[i].lower().startswith(prefix.lower())]

    first, last = numbers[made[0]], numbers[made[9]]
    common = first[:-1]  # e.g. INV-2026-0000: the first nine, not the tenth (…00010)
    assert 0 < len(starting_with(common)) < 10
    for term in (first, last.lower(), common, common.lower(), last[:-1], "INV-", "inv-2026", f" {first} "):
        assert await search(term) == starting_with(term.strip()), term
    assert await search(first + "0") == []
    assert await search(first[:4] + "1999") == []
    # the same digits without the prefix are searched inside the numbers (trigrams): the same invoices
    assert await search(common[3:]) == starting_with(common)
    # such a term is still looked for in the owners' emails (only the subscription numbers, `SUB-<digits>`, cannot
    # hold it): a customer whose email holds it is found with their invoice too
    holder = user_id(await api.user_token(admin, f"{first.lower()}.billing@example.com"))
    holders = (await create_draft(api, admin, holder, [line("Held", 1, 10)]))["id"]
    assert await search(first) == [holders, *starting_with(first)]


async def test_an_invoice_found_through_several_columns_is_listed_and_counted_once(billing_api, admin, plan, clock):
    """The search's branches (the email, the invoice number, the subscription number) can match the same invoice:
    it is listed and counted once, whichever branch counts it; an invoice only one branch matches is there too."""
    api = billing_api
    clock.set(dt.datetime(2026, 6, 1, 9, tzinfo=dt.timezone.utc))
    club, club_subscription = await customer_with_subscription(api, admin, plan["id"], "club-0@example.com")
    plain, plain_subscription = await customer_with_subscription(api, admin, plan["id"], "plain@example.com")
    holder = await api.user_token(admin, "inv-2026-00009@example.com")
    await complete_profile(api, holder, email="inv-2026-00009@example.com")

    async def draft(owner: str, minute: int, subscription: dict | None = None, *, issued: bool = False) -> str:
        clock.set(dt.datetime(2026, 6, 1, 10, minute, tzinfo=dt.timezone.utc))
        extra = {"subscriptionId": subscription["id"]} if subscription else {}
        made = (await create_draft(api, admin, user_id(owner), [line("Hosting", 1, 10)], **extra))["id"]
        if issued:
            assert (await issue(api, admin, made, dueInDays=1))["invoiceNumber"].startswith("INV-2026-0000")
        return made

    both = await draft(club, 1, club_subscription, issued=True)  # the email, the subscription and the number
    email_only = await draft(club, 2)
    subscription_only = await draft(plain, 3, plain_subscription)
    await draft(plain, 4)  # matched by nothing
    holder_issued = await draft(holder, 5, issued=True)  # the email and the number
    holder_draft = await draft(holder, 6)
    clock.now = None

    async def search(term: str, **params) -> tuple[list[str], int]:
        response = await api.get(f"{BASE}/invoices", token=admin, params={"search": term, "limit": 0, **params})
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]], response.json()["total"]

    assert await search("ub-0") == ([subscription_only, email_only, both], 3)  # "club-0@…", "SUB-0…"
    assert await search("nv-2026-0000") == ([holder_draft, holder_issued, both], 3)  # inside numbers and an email
    assert await search("inv-2026-0000") == ([holder_draft, holder_issued, both], 3)  # a number prefix, and an email
    assert await search("INV-2026-0000", limit=1, offset=1) == ([holder_issued], 3)
    assert await search("ub-0", userId=str(user_id(club))) == ([email_only, both], 2)


async def test_an_offset_beyond_64_bits_is_echoed_with_an_empty_page(billing_api, admin, customer):
    """Found by schemathesis: the page PostgreSQL writes as JSON could not be encoded next to such an offset (500)."""
    await create_draft(billing_api, admin, user_id(customer), [line("Setup", 1, 10)])
    for path in ("/invoices", "/invoices/open-overdue"):
        for params in ({}, {"search": "customer"}):
            response = await billing_api.get(f"{BASE}{path}", token=admin,
                                             params={"offset": str(2**73), "limit": "-5", **params})
            assert response.status_code == 200, response.text
            page = response.json()
            assert (page["items"], page["offset"], page["limit"]) == ([], 2**73, -5)
            assert page["total"] == (1 if path == "/invoices" else 0)
