"""A plain search term over the whole admin list is counted from the matched customers' invoice counters
(migration 0030) and paged in one of two ways, chosen by the statement from its total: the tenant's invoices walked
newest first (a term matching many of them) or the matches gathered and sorted (a term matching few). Both ways
must list the same invoices in the same order with the same total, counting an invoice matched twice (by its
owner's e-mail and by its number) once, and finding the invoices only the other branches match."""

from __future__ import annotations

import datetime as dt

import pytest

from decabill.invoicing.repository import InvoiceRepository
from tests.admin.conftest import BASE, create_draft, issue, line
from tests.invoicing.conftest import complete_profile, user_id


@pytest.fixture(autouse=True, params=["counters", "gathered"])
def email_count(request, monkeypatch):
    """Each test twice: the e-mail branch counted from the customers' counters (any matched customer is "many"),
    and from the matches it gathers (the default bound, far above these tests' customers)."""
    if request.param == "counters":
        monkeypatch.setattr(InvoiceRepository, "COUNTERS_ABOVE_CUSTOMERS", 0)
        monkeypatch.setattr(InvoiceRepository, "_searches", {})  # statements are built once per process
    return request.param


async def _customer(api, admin: str, email: str):
    """A customer whose invoices can be issued (a complete billing profile)."""
    token = await api.user_token(admin, email)
    await complete_profile(api, token)
    return user_id(token)


async def _listed(api, admin: str, **params) -> tuple[list[str], int]:
    response = await api.get(f"{BASE}/invoices", token=admin, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    return [item["id"] for item in body["items"]], body["total"]


async def test_a_broad_term_is_paged_by_walking_and_a_narrow_one_by_gathering_with_the_same_answer(
        billing_api, admin, clock):
    api = billing_api
    made: list[tuple[int, str, bool]] = []  # (minute created, id, matched by the term) of every invoice

    async def draft(owner, minute: int, matched: bool) -> str:
        clock.set(dt.datetime(2026, 6, 1, 9, minute, tzinfo=dt.timezone.utc))
        invoice_id = (await create_draft(api, admin, owner, [line(f"Item {minute}", 1, 10)]))["id"]
        made.append((minute, invoice_id, matched))
        return invoice_id

    # an owner whose e-mail does not hold the term, with an issued invoice whose number does: the only match of
    # the number branch, in the middle of the list
    outsider = await _customer(api, admin, "outsider@example.org")
    numbered = await draft(outsider, 15, True)
    term = (await issue(api, admin, numbered, dueInDays=1))["invoiceNumber"][1:].lower()
    # "nv-<year>-<digits>": a plain term (not an `INV-` prefix, not only hex digits, which an id could hold)
    await draft(outsider, 1, False)  # a draft has no number: not matched
    # customers whose e-mails hold the term, with invoices interleaved in time with more of the outsider's
    holders = [await _customer(api, admin, f"holder{n}.{term}@example.com") for n in range(4)]
    for minute in (m for m in range(2, 30) if m != 15):
        await draft(holders[minute % 4], minute, True) if minute % 7 else await draft(outsider, minute, False)
    clock.now = None

    newest_first = [(invoice_id, matched) for _, invoice_id, matched in sorted(made, reverse=True)]
    expected = [invoice_id for invoice_id, matched in newest_first if matched]
    assert (len(made), len(expected)) == (29, 24)

    # the whole list at once (no limit): gathered and sorted
    assert await _listed(api, admin, search=term, limit=0) == (expected, 24)
    # pages of 3: walked while 24² ≥ (3 + offset) × 29 (offsets up to 15, the numbered invoice's page among them),
    # gathered after
    paged = []
    for offset in range(0, 24, 3):
        items, total = await _listed(api, admin, search=term.upper(), limit=3, offset=offset)
        assert total == 24
        paged += items
    assert paged == expected
    assert expected.index(numbered) < 15
    # past the last match: nothing, and still the total
    assert await _listed(api, admin, search=term, limit=3, offset=24) == ([], 24)

    # a narrow term (one holder's e-mail): 6 matches, 6² < (3 + 0) × 29, so its pages are gathered
    own = [invoice_id for minute, invoice_id, _ in sorted(made, reverse=True)
           if minute >= 2 and minute != 15 and minute % 7 and minute % 4 == 1]
    assert len(own) == 6
    first, total = await _listed(api, admin, search=f"holder1.{term}", limit=3)
    second, _ = await _listed(api, admin, search=f"holder1.{term}", limit=3, offset=3)
    assert (first + second, total) == (own, 6)


async def test_an_invoice_matched_by_its_owner_and_its_number_is_counted_once(billing_api, admin, clock):
    api = billing_api
    owner = await _customer(api, admin, "owner@example.com")
    clock.set(dt.datetime(2026, 6, 1, 9, tzinfo=dt.timezone.utc))
    first = (await create_draft(api, admin, owner, [line("One", 1, 10)]))["id"]
    term = (await issue(api, admin, first, dueInDays=1))["invoiceNumber"][1:-1].lower()  # "nv-2026-0000"
    # a customer whose e-mail holds the term, whose own invoice's number (the next one) holds it too
    holder = await _customer(api, admin, f"holder.{term}@example.com")
    clock.set(dt.datetime(2026, 6, 1, 10, tzinfo=dt.timezone.utc))
    second = (await create_draft(api, admin, holder, [line("Two", 1, 10)]))["id"]
    assert term in (await issue(api, admin, second, dueInDays=1))["invoiceNumber"].lower()
    clock.now = None
    # the owner's invoice by its number, the holder's by e-mail and number: each once, gathered (no limit) and
    # walked (2² ≥ (1 + offset) × 2)
    assert await _listed(api, admin, search=term, limit=0) == ([second, first], 2)
    assert await _listed(api, admin, search=term, limit=1) == ([second], 2)
    assert await _listed(api, admin, search=term, limit=1, offset=1) == ([first], 2)


async def test_an_invoice_number_prefix_over_the_whole_list_is_counted_from_its_index_and_paged_both_ways(
        billing_api, admin, clock):
    """`INV-…` is matched as a prefix of the numbers (counted from the prefix index alone on PostgreSQL, 0031), and in
    the owners' e-mails: an invoice of a customer whose e-mail holds it is found by that branch alone."""
    api = billing_api
    owner = await _customer(api, admin, "owner@example.com")
    holder = await _customer(api, admin, "inv-holder@example.com")
    made: list[tuple[int, str, bool]] = []
    for minute, who, issued in ((0, owner, True), (2, owner, False), (4, owner, True), (6, owner, False),
                                (8, owner, True), (9, holder, False), (10, owner, True)):
        clock.set(dt.datetime(2026, 6, 1, 9, minute, tzinfo=dt.timezone.utc))
        invoice_id = (await create_draft(api, admin, who, [line(f"Item {minute}", 1, 10)]))["id"]
        if issued:
            await issue(api, admin, invoice_id, dueInDays=1)
        made.append((minute, invoice_id, issued or who == holder))
    clock.now = None
    expected = [invoice_id for _, invoice_id, matched in sorted(made, reverse=True) if matched]
    assert len(expected) == 5 and expected[1] == made[5][1]  # the holder's draft second

    assert await _listed(api, admin, search="inv-", limit=0) == (expected, 5)  # gathered
    # one by one: 5² ≥ (1 + offset) × 7 walks offsets 0-2 (the holder's draft among them), gathers 3 and 4
    assert [(await _listed(api, admin, search="INV-", limit=1, offset=offset)) for offset in range(6)] == \
        [([invoice_id], 5) for invoice_id in expected] + [([], 5)]
