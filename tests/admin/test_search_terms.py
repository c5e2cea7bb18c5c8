"""Admin search terms shorter than a trigram, runs of digits, and owner ids matched on `users` (migration 0032).

A term of one or two characters is matched by its position in each searched text (no trigram index can serve it; a
whole trigram index read first cost more than the scan); a run of digits (a year) is counted and paged by the
invoice-number branch, the ids and subscription numbers added; a fragment of an owner's id is matched on the
owner's row, not on every invoice of theirs. Either way the answer must stay what the contract says: the invoices
whose number, subscription number, owner e-mail, id or owner id holds the term, case-insensitively, newest first.
Both backends; the plans and the migration on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from typing import Any, Iterator

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from decabill import db
from decabill.identity.repository import EMAIL_GRAM
from decabill.invoicing.repository import InvoiceRepository
from decabill.migrations import alembic_config, migrate
from decabill.repository import TENANT_PARAM, paging
from models.identity import User
from models.invoicing import Invoice
from models.subscriptions import Subscription
from tests.admin.conftest import BASE, create_draft, issue, line
from tests.conftest import BACKENDS, _create_pg_database, _drop_pg_database
from tests.invoicing.conftest import complete_profile, customer_with_subscription, user_id


async def _everything(api, admin: str) -> list[dict[str, Any]]:
    response = await api.get(f"{BASE}/invoices", token=admin, params={"limit": 0})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _holds(item: dict[str, Any], term: str) -> bool:
    texts = (item.get("invoiceNumber"), item.get("subscriptionNumber"), item["userEmail"], item["id"], item["userId"])
    return any(term in value.lower() for value in texts if value)


async def test_short_terms_and_runs_of_digits_find_what_holds_them_and_owner_ids_all_their_invoices(billing_api, admin,
                                                                                                     plan, clock):
    api = billing_api
    owners = []
    # the first e-mail holds the numbers' year: its issued invoices match a year twice (number and owner), once counted;
    # the third a year and a dash, as the numbers do ("dated": the numbers read as a prefix, the e-mails as text)
    for email in ("ab.first.2026@example.com", "Second-XY@example.org", "third_100%.2026-9@example.net"):
        token = await api.user_token(admin, email)
        await complete_profile(api, token)
        owners.append(user_id(token))
    # a fourth owner, with a subscription: three of the invoices belong to it, and its number (SUB-<digits>) is searched
    # the fourth holds a subscription-number prefix ("sub-9": no number holds it, the e-mail does)
    token, subscription = await customer_with_subscription(api, admin, plan["id"], "fourth.sub-9@example.com")
    owners.append(user_id(token))
    for minute in range(12):
        clock.set(dt.datetime(2026, 6, 1, 9, minute, tzinfo=dt.timezone.utc))
        extra = {"subscriptionId": subscription["id"]} if minute % 4 == 3 else {}
        draft = await create_draft(api, admin, owners[minute % 4], [line(f"Item {minute}", 1, 10)], **extra)
        if minute % 2:  # issued ones carry a number; drafts have none
            await issue(api, admin, draft["id"])
    clock.now = None
    listed = await _everything(api, admin)
    assert len(listed) == 12 and sum(bool(item.get("subscriptionNumber")) for item in listed) == 3

    # one and two characters: letters, digits, the ids' dashes, the e-mails' punctuation and LIKE's wildcards and
    # escape character (matched as themselves), and two-character pieces of every kind of searched text
    terms = {*"abcdef0123456789-@._%/xyz", "ab", "xy", "Y@", "0%", ".n", "iv", "v-", "zz", "su", "b-", "s"}
    # non-ASCII letters whose upper case is ASCII ("ı" -> "I", "ſ" -> "S"): numbers are searched in upper case, and
    # INV-/SUB- must not match them
    terms |= {"ı", "ıv", "ſ", "ſu"}
    for item in listed:
        terms |= {item["id"][:2], item["id"][-2:], item["userId"][9:11]}
        # runs of digits (and dashes) of three or more in ids: the invoice-number branch counts and pages them
        terms |= {run[:4] for run in re.findall(r"[0-9-]{3,}", item["id"] + " " + item["userId"])}
        if item.get("invoiceNumber"):
            number = item["invoiceNumber"]  # INV-<year>-<digits>
            terms |= {number[-2:], number[4:8], number[4:9], number[-3:], number[-5:-1], number[8:11], number[4:],
                      number[4:10], number[4:-1]}
        if item.get("subscriptionNumber"):  # SUB-<digits>: prefixes of it are read as a range
            number = item["subscriptionNumber"]
            terms |= {number, number[:-1], number[:5], number[:4]}
    terms |= {"2026-9", "2026-09", "2025-0"}  # a year and a dash: an e-mail's, none, and another year
    terms |= {"sub-9", "sub-99", "SUB-"}  # a subscription-number prefix: an e-mail's, none, every number's
    # the year of the numbers: a run of digits held by every issued invoice, enough of them (6² ≥ 2 × 12) that its
    # first page of 2 is walked
    year = next(item["invoiceNumber"][4:8] for item in listed if item.get("invoiceNumber"))
    assert year == "2026" and InvoiceRepository.search_kind(year) == "digits" and year in terms
    assert sum(_holds(item, year) for item in listed) >= 6
    assert {InvoiceRepository.search_kind(term) for term in terms if term.startswith(f"{year}-")} == {"dated"}
    assert {InvoiceRepository.search_kind(term.lower()) for term in terms if term.lower().startswith("sub-")} == {
        "subscription"}
    found_any = 0
    for term in sorted(terms):
        expected = [item["id"] for item in listed if _holds(item, term.lower())]
        response = await api.get(f"{BASE}/invoices", token=admin, params={"search": term, "limit": 0})
        assert response.status_code == 200, response.text
        body = response.json()
        assert ([item["id"] for item in body["items"]], body["total"]) == (expected, len(expected)), term
        found_any += bool(expected)
        # paged: the same invoices in the same order, the same total on every page (pages of 2 walk the list
        # newest first for a term matching many, pages of 5 gather the matches: `_broad_or_narrow_page`)
        for size in (2, 5):
            paged = []
            for offset in range(0, max(len(expected), 1), size):
                page = (await api.get(f"{BASE}/invoices", token=admin,
                                      params={"search": term, "limit": size, "offset": offset})).json()
                assert page["total"] == len(expected), (term, size)
                paged += [item["id"] for item in page["items"]]
            assert paged == expected, (term, size)
    assert found_any >= len(terms) // 2  # the terms are not vacuous

    # a fragment of an owner's id (hex: the id branches run) finds every invoice of that owner and those whose own
    # id or number holds it
    for owner in owners:
        fragment = str(owner)[9:18]
        expected = [item["id"] for item in listed if _holds(item, fragment)]
        assert {item["id"] for item in listed if item["userId"] == str(owner)} <= set(expected)
        response = await api.get(f"{BASE}/invoices", token=admin, params={"search": fragment.upper(), "limit": 0})
        assert [item["id"] for item in response.json()["items"]] == expected


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


async def _plan(kind: str | None, term: str, *settings: str) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the whole-list search statement for `term` as `_page_statement` builds it, values written
    in, under the planner `settings`."""
    values = {TENANT_PARAM: "default", **paging(20, 0), **InvoiceRepository.search_term_values(term, kind)}
    statement = InvoiceRepository._search_statement("postgresql", False, False, kind, True,
                                                    InvoiceRepository.is_short(term)).params(**values)
    sql = statement.compile(db.get_engine().sync_engine, compile_kwargs={"literal_binds": True})
    async with db.get_engine().connect() as conn:
        for setting in settings:
            await conn.execute(text(f"SET {setting}"))
        [[plan]] = (await conn.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"))).all()
        await conn.rollback()
    return plan[0]["Plan"]


def _trigram_reads(plan: dict[str, Any]) -> list[str]:
    return [node["Index Name"] for node in _nodes(plan) if node.get("Index Name", "").endswith("_trgm")]


@pytest.mark.parametrize("kind, short_term, long_term",
                         [("email", "xy", "xyz"), (None, "iv", "inv"), ("hex", "ab", "abc")])
async def test_a_short_term_reads_no_trigram_index_and_the_page_by_primary_key(billing_api, admin, kind, short_term,
                                                                                long_term):
    if db.dialect_name() != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    assert {InvoiceRepository.search_kind(short_term), InvoiceRepository.search_kind(long_term)} == {kind}
    token = await billing_api.user_token(admin, "xyz.abc.iv@example.com")
    await complete_profile(billing_api, token)
    for minute in range(3):
        await create_draft(billing_api, admin, user_id(token), [line(f"Item {minute}", 1, 10)])
    async with db.get_engine().begin() as conn:  # enough customers that a trigram index beats reading them all
        await conn.execute(text(
            "INSERT INTO users (id, tenant_id, email, role, created_at, updated_at, password_reset_failed_attempts,"
            " credential_version) SELECT gen_random_uuid(), 'default', 'other' || n || '@example.org', 'user', now(),"
            " now(), 0, 0 FROM generate_series(1, 5000) AS n"))
        await conn.execute(text("ANALYZE users"))
    if kind != "hex":  # (every column is matched alike; these plans read a trigram index at this size)
        # whole-table and plain index reads priced out: an index that can serve a condition by itself is read
        bitmaps_only = ("enable_seqscan = off", "enable_indexscan = off", "enable_indexonlyscan = off")
        assert _trigram_reads(await _plan(kind, long_term, *bitmaps_only))  # a trigram: its indexes serve it
        assert _trigram_reads(await _plan(kind, short_term, *bitmaps_only)) == []
    # the page's rows by primary key, whatever the joins cost: none hashes or merges the invoices for them
    plan = await _plan(kind, short_term, "enable_nestloop = off", "enable_seqscan = off")
    by_key = [node for node in _nodes(plan) if node.get("Index Name") == "invoices_pkey"]
    assert by_key and all("ANY" in node["Index Cond"] for node in by_key), by_key
    assert sum(node["Actual Rows"] * node["Actual Loops"] for node in by_key) == 3


async def test_a_whole_id_is_searched_in_the_ids_and_e_mails_alone(billing_api, admin):
    """A whole id's text has four dashes, which no invoice number (two) or subscription number (one) holds: no number
    is read for it (at 1,000,000 invoices their trigram indexes took 19.7 of the 20.7 ms), and an e-mail that holds
    the id is still found."""
    api = billing_api
    held = uuid.uuid4()
    token = await api.user_token(admin, f"{held}@example.com")
    await complete_profile(api, token)
    drafts = [await create_draft(api, admin, user_id(token), [line(f"Item {n}", 1, 10)]) for n in range(2)]
    response = await api.get(f"{BASE}/invoices", token=admin, params={"search": str(held).upper(), "limit": 0})
    assert response.status_code == 200, response.text
    assert [item["id"] for item in response.json()["items"]] == [drafts[1]["id"], drafts[0]["id"]]
    if db.dialect_name() != "postgresql":
        return
    assert InvoiceRepository.search_kind(str(held)) == "uuid"
    plan = await _plan("uuid", str(held))
    conditions = [node[key] for node in _nodes(plan) for key in ("Filter", "Index Cond", "Recheck Cond") if key in node]
    matched_as_text = [condition for condition in conditions if "~~" in condition]  # LIKE '%<id>%'
    assert matched_as_text and all("(email)" in condition for condition in matched_as_text), matched_as_text


async def test_a_year_and_a_dash_reads_the_numbers_as_a_prefix(billing_api):
    """A term starting with four digits and a dash can only be a year and what follows it in an invoice number, so
    the numbers holding it start with "inv-" and it: read as a range (at 1,000,000 invoices the trigram index took
    17.5 of the search's 37.7 ms), and no subscription number (whose one dash follows "sub") is read."""
    if db.dialect_name() != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    assert InvoiceRepository.search_kind("2026-0001") == "dated"
    assert InvoiceRepository.search_term_values("2026-0001", "dated")[InvoiceRepository.SEARCH_NUMBER_FROM] == "inv-2026-0001"
    plan = await _plan("dated", "2026-0001")
    conditions = [node[key] for node in _nodes(plan) for key in ("Filter", "Index Cond", "Recheck Cond") if key in node]
    assert any("(invoice_number)::text) ~>=~ 'inv-2026-0001'" in condition for condition in conditions), conditions
    matched_as_text = [condition for condition in conditions if "~~" in condition]  # LIKE '%2026-0001%'
    # (a number may be tested by its range next to an id's pattern, never by the pattern)
    assert matched_as_text and not [condition for condition in matched_as_text if "number)::text) ~~" in condition], conditions


async def test_a_subscription_number_prefix_reads_the_numbers_as_a_range(billing_api):
    """`SUB-…` can only start a subscription number: read as a range on `ix_subscriptions_number_prefix` (migration
    0033; at 200,000 subscriptions the trigram index read 11,119 candidates for one match), and no invoice number,
    none of which holds "sub-", is read."""
    if db.dialect_name() != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    assert InvoiceRepository.search_kind("sub-00000042") == "subscription"
    values = InvoiceRepository.search_term_values("sub-00000042", "subscription")
    assert (values[InvoiceRepository.SEARCH_NUMBER_FROM], values[InvoiceRepository.SEARCH_NUMBER_TO]) == (
        "SUB-00000042", "SUB-00000043")
    plan = await _plan("subscription", "sub-00000042")
    conditions = [node[key] for node in _nodes(plan) for key in ("Filter", "Index Cond", "Recheck Cond") if key in node]
    assert any("(number)::text ~>=~ 'SUB-00000042'" in condition for condition in conditions), conditions
    matched_as_text = [condition for condition in conditions if "~~" in condition]  # LIKE '%sub-00000042%'
    assert matched_as_text and all("(email)" in condition for condition in matched_as_text), conditions
    async with db.get_engine().connect() as conn:  # the index the range is read from, in byte order
        [definition] = (await conn.execute(text(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_subscriptions_number_prefix'"))).scalars().all()
    assert definition.endswith("(number text_pattern_ops)"), definition


async def test_a_term_only_e_mails_hold_walks_the_list_testing_each_invoice_it_reads(billing_api):
    """The walk of a broad term (`_broad_or_narrow_page`) must read the tenant's invoices newest first and stop at
    the page, testing each against the matched customers. Written as a bare IN (subquery), PostgreSQL turns the test
    into a join with the customers, whose matches it then sorts: every one of 100,000 (bench/explain.py: 23 ->
    167 ms)."""
    if db.dialect_name() != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    assert InvoiceRepository.search_kind("example.com") == "email"
    # customers of its own, every one matching, and fresh statistics: the plan must not rest on what earlier tests
    # left in the tables' statistics (with none of its own it once planned no walk at all, under `-n 2`)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    async with db.transaction() as session:
        for number in range(60):
            user = User(tenant_id="default", email=f"walker{number:02d}@example.com", id=uuid.uuid4())
            session.add(user)
            await session.flush()
            session.add_all(Invoice(tenant_id="default", user_id=user.id, created_at=start + dt.timedelta(days=day))
                            for day in range(10))
    async with db.get_engine().connect() as conn:
        await conn.execute(text("ANALYZE users"))
        await conn.execute(text("ANALYZE invoices"))
        await conn.commit()
    plan = await _plan("email", "example.com", "enable_seqscan = off", "enable_sort = off")
    walked = [node for node in _nodes(plan) if node.get("Index Name") == "ix_invoices_tenant_created"]
    assert walked, plan
    assert all(node["Scan Direction"] == "Backward" and "SubPlan" in node.get("Filter", "") for node in walked), walked


async def test_a_run_of_digits_tests_the_numbers_of_subscription_matches_on_the_rows_it_reads(billing_api, admin, plan):
    """A run of digits that many subscription numbers hold ("0001" in 11,111 of 20,000) matches their invoices, which
    the subscription branch reads row by row anyway: it tests their invoice number there, where each used to be read
    again by primary key to leave out what the number branch counted (~4 µs per match: 47,000 of them took 200 of
    the search's 550 ms in bench/scale.py). Each match is still counted once."""
    if db.dialect_name() != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    assert InvoiceRepository.search_kind("4242") == "digits"
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    owner_id = next(candidate for candidate in iter(uuid.uuid4, None) if "4242" not in str(candidate))
    async with db.transaction() as session:
        session.add(User(tenant_id="default", email="digits.owner@example.com", id=owner_id))
        await session.flush()
        for number in range(40):
            subscription = Subscription(tenant_id="default", number=f"SUB-4242{number:04d}", status="active",
                                        plan_id=uuid.UUID(plan["id"]), user_id=owner_id)
            session.add(subscription)
            await session.flush()
            # the first subscription's invoices hold the run in their numbers too: matched twice, counted once
            session.add_all(Invoice(tenant_id="default", user_id=owner_id, subscription_id=subscription.id,
                                    invoice_number=f"INV-2026-4242{number}{hour}" if number == 0 else None,
                                    created_at=start + dt.timedelta(days=number, hours=hour)) for hour in range(3))
    async with db.get_engine().connect() as conn:
        await conn.execute(text("ANALYZE subscriptions"))
        await conn.execute(text("ANALYZE invoices"))
        await conn.commit()
    held = [item for item in await _everything(billing_api, admin) if _holds(item, "4242")]
    assert len(held) == 120
    response = await billing_api.get(f"{BASE}/invoices", token=admin, params={"search": "4242", "limit": 5})
    assert response.status_code == 200, response.text
    assert response.json()["total"] == 120
    assert [item["id"] for item in response.json()["items"]] == [item["id"] for item in held[:5]]
    found = await _plan("digits", "4242")
    # no invoice read again per matched row (by primary key, or on tables this small by a scan) to test its number
    per_row = [node for node in _nodes(found)
               if node.get("Parent Relationship") == "SubPlan" and node.get("Relation Name") == "invoices"]
    assert sum(node["Actual Loops"] for node in per_row) == 0, per_row
    # the subscription branch's rows filtered by their own number: the 117 whose number does not hold the term pass
    by_subscription = [node for node in _nodes(found) if node.get("Alias") == "by_subscription"
                       and "invoice_number)" in node.get("Filter", "") and "IS NOT TRUE" in node.get("Filter", "")]
    assert [node["Actual Rows"] * node["Actual Loops"] for node in by_subscription] == [117], found


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL not in DECABILL_TEST_BACKENDS")
async def test_migration_0032_moves_the_owner_id_trigram_index_to_users_and_back():
    name, url = await _create_pg_database()
    engine = create_async_engine(url)

    async def trigram_indexes() -> set[str]:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%id_trgm'"))
            return {name for (name,) in rows}

    try:
        await migrate(url)
        assert await trigram_indexes() == {"ix_invoices_id_trgm", "ix_users_id_trgm"}
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0031")
        assert await trigram_indexes() == {"ix_invoices_id_trgm", "ix_invoices_user_id_trgm"}
        await migrate(url)
        assert await trigram_indexes() == {"ix_invoices_id_trgm", "ix_users_id_trgm"}
        async with engine.connect() as conn:  # the index is on the expression the search matches
            [definition] = (await conn.execute(text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_users_id_trgm'"))).scalars().all()
        assert "lower(((id)::character varying)::text) gin_trgm_ops" in definition
    finally:
        await engine.dispose()
        await _drop_pg_database(name)


async def test_a_short_term_only_e_mails_hold_reads_the_index_of_their_pieces(billing_api, admin):
    """"xy" (only an e-mail holds an x or a y) is looked up in `ix_users_email_short_grams` (migration 0034): the
    users whose e-mail has the piece, not every user's e-mail read and tested (5,000 here; 100,000 read 93-102 ms in
    bench/scale.py)."""
    if db.dialect_name() != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    token = await billing_api.user_token(admin, "Second-XY@example.org")
    await complete_profile(billing_api, token)
    await create_draft(billing_api, admin, user_id(token), [line("Item", 1, 10)])
    async with db.get_engine().begin() as conn:
        await conn.execute(text(
            "INSERT INTO users (id, tenant_id, email, role, created_at, updated_at, password_reset_failed_attempts,"
            " credential_version) SELECT gen_random_uuid(), 'default', 'other' || n || '@example.org', 'user', now(),"
            " now(), 0, 0 FROM generate_series(1, 5000) AS n"))
        await conn.execute(text("ANALYZE users"))
        [pieces] = (await conn.execute(text("SELECT decabill_short_grams('Ab.a')"))).one()
    assert sorted(pieces) == sorted(["A", "b", ".", "a", "Ab", "b.", ".a"])  # each piece once, as written
    holdings = {}
    for term in ("xy", "q", "-x"):
        assert InvoiceRepository.search_kind(term) == "email" and InvoiceRepository.is_short(term)
        async with db.get_engine().connect() as conn:
            holding = await conn.scalar(text("SELECT count(*) FROM users WHERE strpos(lower(email), :term) > 0"),
                                        {"term": term})
        plan = await _plan("email", term)
        users = [node for node in _nodes(plan) if node.get("Relation Name") == "users"]
        assert users and all(node["Node Type"] != "Seq Scan" for node in users), plan
        by_pieces = [node for node in _nodes(plan) if node.get("Index Name") == "ix_users_email_short_grams"]
        assert by_pieces and all(node["Node Type"] == "Bitmap Index Scan" for node in by_pieces), plan
        # (the index's entries may include rows of earlier tests deleted since: the heap scan reads the live ones)
        assert max(node["Actual Rows"] for node in users if node["Node Type"] == "Bitmap Heap Scan") == holding, (
            term, plan)
        holdings[term] = holding
    assert holdings["xy"] >= 1 and holdings["-x"] >= 1 and holdings["q"] == 0  # the terms are not vacuous


def test_every_short_term_is_a_piece_the_e_mail_pieces_index_holds():
    """A short term is under `TRIGRAM` characters; the index holds the e-mails' pieces up to `EMAIL_GRAM`: were the
    trigram raised or the pieces shortened, a short term would find no piece and no e-mail."""
    assert InvoiceRepository.TRIGRAM - 1 <= EMAIL_GRAM
    assert InvoiceRepository.is_short("x" * (InvoiceRepository.TRIGRAM - 1))
    assert not InvoiceRepository.is_short("x" * InvoiceRepository.TRIGRAM)


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL not in DECABILL_TEST_BACKENDS")
async def test_migration_0034_adds_the_e_mail_pieces_index_and_takes_it_away():
    name, url = await _create_pg_database()
    engine = create_async_engine(url)

    async def present() -> tuple[bool, bool]:
        async with engine.connect() as conn:
            index = await conn.scalar(text("SELECT to_regclass('ix_users_email_short_grams') IS NOT NULL"))
            function = await conn.scalar(text("SELECT to_regproc('decabill_short_grams') IS NOT NULL"))
            return bool(index), bool(function)

    try:
        await migrate(url)
        assert await present() == (True, True)
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0033")
        assert await present() == (False, False)
        await migrate(url)
        assert await present() == (True, True)
    finally:
        await engine.dispose()
        await _drop_pg_database(name)
