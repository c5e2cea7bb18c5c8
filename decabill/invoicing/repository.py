"""Queries on invoicing's tables: invoices, their lines, the audit trail and the mail outbox."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    union,
    union_all,
)
from sqlalchemy.sql import ColumnElement, Select

from decabill.identity.repository import UserRepository
from decabill.repository import (
    PAGE_LIMIT,
    PAGE_OFFSET,
    JsonField,
    Repository,
    first_page_of,
    generic_plan,
    page,
    paged,
    paging,
    planned_first_page,
    prepared,
    together,
)
from decabill.subscriptions.repository import OpenPositionRepository, SubscriptionRepository
from decabill.usage.repository import UsageRecordRepository
from models.catalog import ServicePlan
from models.identity import User
from models.invoicing import (
    DocumentStatus,
    InvoiceDocumentTask,
    Invoice,
    InvoiceAuditLog,
    InvoiceCount,
    InvoiceLine,
    InvoiceOrigin,
    InvoiceUserCount,
    InvoiceStatus,
    MailDelivery,
    MailStatus,
    UsageRecord,
)
from models.subscriptions import OpenPosition, Subscription


_LIKE_ESCAPE = "/"
_LIKE_SPECIAL = {"%", "_", _LIKE_ESCAPE}
_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX_TEXT = re.compile(r"[0-9a-f-]+")
_DIGITS_TEXT = re.compile(r"[0-9-]+")
# A (lower-case) term that can only occur at the start of an invoice number: numbers are written only as
# `INV-<year>-<digits>` (`format_invoice_number`), so "inv-" appears nowhere but at their start, and for such a
# term `LIKE '%term%'` and "starts with term" match the same invoices. Subscription numbers are `SUB-<digits>`
# (decabill/subscriptions/lifecycle.py), so such a term is in none of them: that branch of the search is left out.
_NUMBER_PREFIX = re.compile(r"inv-[0-9-]*")
# A run of digits that starts with four digits and a dash (`2026-0001`): in an invoice number it can only be the year
# and what follows it (the only other dash follows "inv"), so the numbers holding it are those starting with "inv-" and
# it. No subscription number holds it (their one dash follows "sub"); an id's text or an e-mail can.
_YEAR_AND_AFTER = re.compile(r"[0-9]{4}-[0-9]*")
# A (lower-case) term that can only occur at the start of a subscription number (`SUB-<digits>`): no invoice number
# holds "sub-" and no id an "s"; an e-mail can.
_SUBSCRIPTION_PREFIX = re.compile(r"sub-[0-9]*")
# The characters of every searched text but the e-mails, lower-case: invoice and subscription numbers (the formats
# above) and ids' text (hex digits and dashes). A term holding any other character can only be in an e-mail.
_NUMBER_OR_ID_CHARACTERS = frozenset("0123456789abcdef-" "inv" "sub")


def of_subscription(subscription_id: Any) -> ColumnElement[bool]:
    """WHERE condition on `Invoice`: the invoice was made for the subscription or has a line of it (an
    invoice of the billing day that covers several subscriptions belongs to each of them)."""
    lines = select(InvoiceLine.invoice_id).where(InvoiceLine.subscription_id == subscription_id)
    return or_(Invoice.subscription_id == subscription_id, Invoice.id.in_(lines.scalar_subquery()))


class InvoiceCountRepository(Repository[InvoiceCount]):
    model = InvoiceCount

    async def total(self) -> int:
        """How many invoices the tenant has (the counter the triggers of migration 0024 keep; no row = none yet)."""
        return int(await self.one_or_none(self.statement(InvoiceCount.invoices)) or 0)

    @classmethod
    def total_query(cls) -> Select[Any]:
        """`total()` as a one-value statement of the bound tenant (NULL when there is no row yet)."""
        return cls.scoped(InvoiceCount.invoices)

    async def list_version(self) -> int:
        """The version of the tenant's admin invoice list (`InvoiceCount.list_version`; no row yet = 0)."""
        (row,) = await self.run(self._list_version)
        return row.list_version

    @classmethod
    def list_version_column(cls) -> Any:
        """`list_version()` as a column of another statement, read in its snapshot: the version of what it read."""
        return func.coalesce(cls.scoped(InvoiceCount.list_version).scalar_subquery(), 0).label("list_version")

    @prepared
    def _list_version(cls) -> Select[Any]:
        return select(cls.list_version_column())


class _Likeliest(NamedTuple):
    """The search branch likely to match most invoices, as `InvoiceRepository._broad_or_narrow_page` reads it:
    `count`, a one-value statement of how many invoices it matches; `holds`, its condition on an invoice row;
    `gathered`, its matches' (id, created_at)."""

    count: Select[Any]
    holds: ColumnElement[bool]
    gathered: Select[Any]


class InvoiceUserCountRepository(Repository[InvoiceUserCount]):
    model = InvoiceUserCount

    @classmethod
    def invoices_of_query(cls, user_ids: Any) -> Select[Any]:
        """How many invoices of the bound tenant the users of `user_ids` (a one-column CTE or subquery of user
        ids) have, from the counters the triggers of migration 0030 keep: one primary-key read per user (a
        lookup per user, not a join: the generic plan, not knowing how few users match, hashed every counter)."""
        counter = cls.scoped(InvoiceUserCount.invoices).where(InvoiceUserCount.user_id == user_ids.c.id)
        return select(func.coalesce(func.sum(counter.scalar_subquery()), 0)).select_from(user_ids)


def invoice_view_values(row: Any) -> dict[str, Any]:
    """The properties of `InvoiceView` (decabill/invoicing/views.py) as SQL over a row of the listed columns (`LISTED`
    and `subscription_number` when the list reads it), for the lists PostgreSQL writes as JSON (`json_array_of`): the
    same rules as the view's properties — tests/invoicing/test_list_json.py reads every list both ways."""
    void_with_number = and_(row.status == InvoiceStatus.VOID, func.coalesce(row.invoice_number, "") != "")
    plain = ("id", "subscription_id", "user_id", "invoice_number", "status", "balance_due", "created_at", "due_date",
             "tax_rule", "dunning_action", "dunning_applied_at")
    # a list of one subscription's invoices does not read its number: null, as `InvoiceView(invoice)` shows
    number = row.subscription_number if "subscription_number" in row else cast(null(), String)
    return {**{name: row[name] for name in plain}, "subscription_number": number,
            "invoice_ref_id": row.id, "balance": row.balance_due,
            "dunning_level": func.coalesce(row.dunning_level, 0),
            "can_pay": and_(row.status.in_(InvoiceStatus.OPEN), row.balance_due > 0),
            "can_download": row.status != InvoiceStatus.DRAFT, "can_preview": row.status != InvoiceStatus.DRAFT,
            "can_download_void_document": void_with_number,
            "void_document_number": case((void_with_number, row.credit_note_number))}


def admin_invoice_view_values(row: Any) -> dict[str, Any]:
    """`invoice_view_values` and the owner's email (`AdminInvoiceView.user_email`), a column of the admin page."""
    return {**invoice_view_values(row), "user_email": row.user_email}


class InvoiceRepository(Repository[Invoice]):
    model = Invoice

    #: what the invoice lists show of an invoice (InvoiceResponse, AdminInvoiceListItem through `InvoiceView`:
    #: the fields it copies and those it derives — `canPay` from the status and the balance, `voidDocumentNumber`
    #: from the number and the credit note's). Nothing else is read for a list: no JSON snapshot (tax, parties),
    #: no other amounts or timestamps to send, decode and convert per row.
    LISTED = ("id", "subscription_id", "user_id", "invoice_number", "status", "balance_due", "created_at", "due_date",
              "credit_note_number", "tax_rule", "dunning_level", "dunning_action", "dunning_applied_at")

    @classmethod
    def listed_columns(cls) -> list[Any]:
        """The columns of `LISTED`, selected by the list statements; their rows are the records the list views
        read. (A view property that needed a column not listed would leave its field out of the answer:
        tests/invoicing/test_list_records.py holds every listed field to the whole invoice's.)"""
        return [Invoice.__table__.c[name] for name in cls.LISTED]

    async def records(self, invoice_ids: Sequence[uuid.UUID]) -> list[Any]:
        """Several invoices as plain records (`record()`), in one query."""
        return await self.all(self.statement(self.record()).where(Invoice.id.in_(invoice_ids)))

    async def any_of_user(self, user_id: uuid.UUID) -> bool:
        return await self.exists(Invoice.user_id == user_id)

    async def get_of_user(self, invoice_id: uuid.UUID, user_id: uuid.UUID, *, subscription_id: uuid.UUID | None = None,
                          for_update: bool = False) -> Invoice | None:
        """The user's invoice (and of the subscription, when given)."""
        conditions = [Invoice.id == invoice_id, Invoice.user_id == user_id]
        if subscription_id is not None:
            conditions.append(of_subscription(subscription_id))
        return await self.get_by(*conditions, for_update=for_update)

    # --- the customer's hot reads: statements built once (`prepared`), run as Core (`run`) ----------------------

    @prepared
    def _of_own_subscription(cls) -> Select[Any]:
        """The user's subscription (one row, `owned`) and, joined to it, its invoices (none: one row of NULLs)."""
        subscription_id, user_id = bindparam("subscription_id"), bindparam("user_id")
        invoices = and_(Invoice.tenant_id == Subscription.tenant_id, Invoice.user_id == Subscription.user_id,
                        of_subscription(subscription_id))
        return (SubscriptionRepository.own(Subscription.id.label("owned"), *cls.listed_columns(),
                                           subscription_id=subscription_id, user_id=user_id)
                .outerjoin(Invoice, invoices)
                .order_by(Invoice.created_at.desc(), Invoice.id))

    async def of_own_subscription_json(self, user_id: uuid.UUID, subscription_id: uuid.UUID,
                                       shape: Sequence[JsonField]) -> str | None:
        """`of_own_subscription` with the items as JSON text PostgreSQL writes (objects of `shape`, the contract's
        InvoiceResponse, from `invoice_view_values`)."""
        row = await self.run_json(self._of_own_subscription, shape, invoice_view_values,
                                  subscription_id=subscription_id, user_id=user_id)
        return row.items if row.listed_rows else None

    async def of_own_subscription(self, user_id: uuid.UUID, subscription_id: uuid.UUID) -> list[Any] | None:
        """The records (read-only) of the user's invoices of the subscription, newest first; None when the
        subscription is not the user's (or not the tenant's, or missing) — the ownership check and the list in
        one statement."""
        rows = await self.run(self._of_own_subscription, subscription_id=subscription_id, user_id=user_id)
        if not rows:
            return None
        return [row for row in rows if row.id is not None]

    @prepared
    def _open_of_user(cls) -> Select[Any]:
        # planned once per connection (`generic_plan`): PostgreSQL planned it anew at every run otherwise (its status
        # list makes the plan for unknown values look costlier), 0.11 ms of the 0.22 ms a run took on the benchmark
        # database; the plan for unknown values is the user's index range whoever the user is
        return generic_plan(cls.scoped(*cls.listed_columns(), Subscription.number.label("subscription_number"))
                .outerjoin(Subscription, Subscription.id == Invoice.subscription_id)
                .where(Invoice.user_id == bindparam("user_id"), Invoice.status.in_(InvoiceStatus.OPEN))
                .order_by(Invoice.created_at.desc(), Invoice.id))

    async def open_of_user_json(self, user_id: uuid.UUID, shape: Sequence[JsonField]) -> str:
        """`open_of_user_with_number` with the items as JSON text PostgreSQL writes (objects of `shape`, the
        contract's InvoiceResponse, from `invoice_view_values`)."""
        row = await self.run_json(self._open_of_user, shape, invoice_view_values, user_id=user_id)
        return row.items

    async def open_of_user_with_number(self, user_id: uuid.UUID) -> list[tuple[Any, str | None]]:
        """The user's open and overdue invoices (records, read-only) with their subscription's number, newest first."""
        return [(row, row.subscription_number) for row in await self.run(self._open_of_user, user_id=user_id)]

    @prepared
    def _summary_of_user(cls) -> Select[Any]:
        user_id = bindparam("user_id")
        return together(UserRepository.value_query(user_id, User.billing_day_of_month),
                        UserRepository.value_query(user_id, User.created_at),
                        cls.open_count_query(user_id=user_id), cls.open_total_query(user_id=user_id),
                        OpenPositionRepository.unbilled_total_query(user_id=user_id),
                        UsageRecordRepository.unbilled_total_query(user_id=user_id))

    async def summary_of_user(self, user_id: uuid.UUID) -> tuple[Any, ...]:
        """In one statement: the user's stored billing day and registration time (None, None for an unknown
        user), the count and balance due of their open and overdue invoices, and the totals of their unbilled
        open positions and usage — each figure its owning repository's query."""
        (row,) = await self.run(self._summary_of_user, user_id=user_id)
        return tuple(row)

    @staticmethod
    def _open(**filters: Any) -> list[ColumnElement[bool]]:
        return [Invoice.status.in_(InvoiceStatus.OPEN), *(getattr(Invoice, name) == value for name, value in filters.items())]

    async def open_count_and_total(self, **filters: Any) -> tuple[int, Decimal]:
        """How many invoices are open or overdue (of the tenant, or of a `user_id`), and their balance due."""
        statement = self.statement(func.count(Invoice.id), self.sum_of(Invoice.balance_due)).where(*self._open(**filters))
        count, total = (await self.rows(statement))[0]
        return int(count), total

    @classmethod
    def open_count_query(cls, **filters: Any) -> Select[Any]:
        return cls.count_query(*cls._open(**filters))

    @classmethod
    def open_total_query(cls, **filters: Any) -> Select[Any]:
        return cls.sum_query(Invoice.balance_due, *cls._open(**filters))

    async def customers_billed_by_run_since(self, since: dt.datetime) -> int:
        """Across every tenant (the operator's metrics): customers the billing run invoiced since `since`."""
        statement = self.in_any_tenant(func.count(func.distinct(Invoice.user_id))).where(
            Invoice.origin == InvoiceOrigin.BILLING_RUN, Invoice.issued_at >= since)
        return int(await self.scalar(statement))

    # --- the overdue job --------------------------------------------------------------------------------------

    async def past_due_ids(self, statuses: Sequence[str], today: dt.date, limit: int,
                           after: tuple[dt.date, uuid.UUID] | None) -> list[tuple[uuid.UUID, dt.date]]:
        """(id, due date) of invoices in `statuses` due before `today`, one page in (due date, id) order after
        the keyset `after`."""
        statement = (self.statement(Invoice.id, Invoice.due_date)
                     .where(Invoice.status.in_(statuses), Invoice.due_date.is_not(None), Invoice.due_date < today)
                     .order_by(Invoice.due_date, Invoice.id))
        if after is not None:
            day, last = after
            statement = statement.where((Invoice.due_date > day) | ((Invoice.due_date == day) & (Invoice.id > last)))
        return [(invoice_id, due) for invoice_id, due in await self.rows(page(statement, limit, 0))]

    async def claim_past_due(self, invoice_id: uuid.UUID, statuses: Sequence[str], today: dt.date) -> Invoice | None:
        return await self.get_by(Invoice.id == invoice_id, Invoice.status.in_(statuses), Invoice.due_date < today,
                                 for_update=True, skip_locked=True)

    # --- dunning (decabill/dunning) ------------------------------------------------------------------------------

    @staticmethod
    def _past_due(today: dt.date) -> tuple[ColumnElement[bool], ...]:
        """Unpaid (issued, partially paid, overdue) with its due date before `today`."""
        return Invoice.status.in_(InvoiceStatus.OPEN), Invoice.due_date.is_not(None), Invoice.due_date < today

    async def users_with_past_due(self, today: dt.date) -> list[uuid.UUID]:
        return await self.all(self.statement(Invoice.user_id).distinct().where(*self._past_due(today)))

    async def past_due_of_user(self, user_id: uuid.UUID, today: dt.date, *, exclude: uuid.UUID | None = None,
                               for_update: bool = False) -> list[Invoice]:
        """The user's past-due unpaid invoices, oldest due date first, then the older invoice (the dunning steps and
        the suspension's message take them in this order; the id alone would let chance pick among one due date)."""
        statement = (self.statement().where(Invoice.user_id == user_id, *self._past_due(today))
                     .order_by(Invoice.due_date, Invoice.created_at, Invoice.id))
        if exclude is not None:
            statement = statement.where(Invoice.id != exclude)
        return await self.all(self.for_update(statement) if for_update else statement)

    async def dunning_levels_page(self, today: dt.date, min_level: int, limit: int,
                                  offset: int) -> tuple[list[tuple[uuid.UUID, str | None, int, Decimal, int, Any]], int]:
        """Per customer with past-due unpaid invoices at dunning level >= `min_level`: (user id, email, highest
        level, balance due of those invoices, how many, oldest due date), highest level first; and the count."""
        level = func.coalesce(func.max(Invoice.dunning_level), 0)
        # Grouped by customer first, from the past-due invoices (`ix_invoices_tenant_status_due`); each group's e-mail
        # then read by primary key. Joined before grouping, PostgreSQL hashed every user of the table to probe the
        # past-due invoices with: 0.6 -> 32 ms at ten times the customers for a list of none (docs/performance.md,
        # "Ten times the rows").
        customers = (self.statement(Invoice.user_id, level.label("level"),
                                    self.sum_of(Invoice.balance_due).label("balance_due"),
                                    func.count(Invoice.id).label("invoices"), func.min(Invoice.due_date).label("oldest"))
                     .where(*self._past_due(today))
                     .group_by(Invoice.user_id)
                     .having(level >= min_level)).subquery("past_due_customers")
        email = select(User.email).where(User.id == customers.c.user_id).scalar_subquery()
        # the page and, in its rows, how many customers there are in all: one statement (the e-mail, a subquery
        # PostgreSQL runs after the LIMIT, is read for the page's rows alone)
        statement = (select(customers.c.user_id, email, customers.c.level, customers.c.balance_due, customers.c.invoices,
                            customers.c.oldest, func.count().over().label("total"))
                     .order_by(customers.c.level.desc(), customers.c.oldest, customers.c.user_id))
        rows = await self.rows(page(statement, limit, offset))
        if rows:
            return [tuple(row)[:-1] for row in rows], int(rows[0].total)
        # a page past the end holds no row to carry the count
        total = int(await self.scalar(select(func.count()).select_from(customers))) if offset else 0
        return [], total

    # --- admin billing ----------------------------------------------------------------------------------------

    @staticmethod
    def _id_text(column: Any, dialect: str) -> Any:
        """The id as its canonical lower-case text: PostgreSQL casts a uuid so; SQLite stores 32 hex digits."""
        if dialect == "postgresql":
            return cast(column, String)
        text = func.lower(cast(column, String))
        return (func.substr(text, 1, 8) + "-" + func.substr(text, 9, 4) + "-" + func.substr(text, 13, 4) + "-"
                + func.substr(text, 17, 4) + "-" + func.substr(text, 21, 12))

    #: the bound parameters of the search statements (`_search_statement`)
    SEARCH_PATTERN, SEARCH_ID, SEARCH_USER = "search_pattern", "search_id", "search_user_id"
    SEARCH_NUMBER_FROM, SEARCH_NUMBER_TO = "search_number_from", "search_number_to"
    SEARCH_TERM = "search_term"  # a term shorter than `TRIGRAM`, matched as it is (`_search_statement`)
    SEARCH_NUMBER_TERM = "search_number_term"  # that term as numbers are written (upper case)
    #: the shortest term a trigram index can serve: a shorter one makes PostgreSQL read a whole trigram index (every
    #: entry matches) and then every row it names, slower than reading the table
    TRIGRAM = 3
    #: above this many matched customers the e-mail branch is counted from their invoice counters; up to it, from the
    #: matches it gathers anyway for a page of few (a counter read per customer added ~10 % to such a search)
    COUNTERS_ABOVE_CUSTOMERS = 1000
    _searches: dict[tuple[str, bool, bool, str | None, bool], Select[Any]] = {}

    @staticmethod
    def search_kind(fragment: str) -> str | None:
        """How a (lower-case, stripped) search term can match ids and numbers: "uuid" (a whole id: equality on the
        invoice and the user id), "digits" (only digits and dashes, a trigram or more: a fragment of invoice numbers,
        such as a year, or of an id's text), "hex" (other hex digits and dashes: a fragment of an id's text, which
        no invoice number holds unless it is all digits), "number" (an invoice-number prefix: a range on
        `ix_invoices_tenant_number_prefix` instead of the trigram index; no id holds it), "dated" (a year, a dash and
        digits: "inv-" and the term as a number prefix, as "number"; an id can hold it), "subscription" (a
        subscription-number prefix: a range on `ix_subscriptions_number_prefix`; only e-mails hold it too),
        "email" (a character no
        number and no id holds: only an owner's e-mail can hold it), None (an e-mail or a number can hold it, no id)."""
        if _UUID_TEXT.fullmatch(fragment):
            return "uuid"
        if _YEAR_AND_AFTER.fullmatch(fragment):
            return "dated"
        if _HEX_TEXT.fullmatch(fragment):
            # (a short run of digits, matching a tenth of the ids, gathers its matches faster in one UNION as "hex")
            long_digits = len(fragment) >= InvoiceRepository.TRIGRAM and _DIGITS_TEXT.fullmatch(fragment)
            return "digits" if long_digits else "hex"
        if _NUMBER_PREFIX.fullmatch(fragment):
            return "number"
        if _SUBSCRIPTION_PREFIX.fullmatch(fragment):
            return "subscription"
        return None if _NUMBER_OR_ID_CHARACTERS.issuperset(fragment) else "email"

    @staticmethod
    def _starting_with(column: Any, dialect: str, low: Any, high: Any) -> ColumnElement[bool]:
        """`low <= column < high` in byte order: with `high` = `low` whose last character is the next one, the
        values starting with `low`. On PostgreSQL the pattern operators, which `text_pattern_ops` indexes serve
        with bound values too (a LIKE with a bound pattern cannot use a btree in the generic plan)."""
        if dialect == "postgresql":
            return and_(column.op("~>=~", is_comparison=True)(low), column.op("~<~", is_comparison=True)(high))
        return and_(column >= low, column < high)  # SQLite compares text byte-wise (BINARY)

    @classmethod
    def _search_statement(cls, dialect: str, by_user: bool, open_only: bool, kind: str | None,
                          text: bool, short: bool = False) -> Select[Any]:
        """ONE statement for a filtered admin page, built once per process and variant: the matching ids, their
        count, and the page's rows LEFT JOINed to that count — a page past the last match is one row of NULLs that
        still carries the total. How the matches are found depends on the term (`search_kind`, `is_short`):

        * a `short` term (under `TRIGRAM` characters) a number or an id can hold: the tenant's invoices read once
          (`_matches_in_one_scan`);
        * a whole id or a fragment of an id's text: one branch per searched column united (`_matches_by_id`);
        * any other term: the branch likely to match most counted as it comes, the others added
          (`_matches_likeliest_first`).

        On PostgreSQL each branch uses its own trigram index: an OR across three joined tables read every invoice of
        the tenant. The page is chosen from the matches' (id, created_at) and only its rows are read from `invoices`
        (docs/performance.md, "Owner ids matched per customer, short terms scanned" and "Short terms in one scan")."""
        key = (dialect, by_user, open_only, kind if text else "none", short)
        statement = cls._searches.get(key)
        if statement is not None:
            return statement

        def invoices(*columns: Any) -> Select[Any]:
            chosen = cls.scoped(*columns)
            if by_user:
                chosen = chosen.where(Invoice.user_id == bindparam(cls.SEARCH_USER, type_=Invoice.user_id.type))
            return chosen.where(Invoice.status.in_(InvoiceStatus.OPEN)) if open_only else chosen

        ids = invoices(Invoice.id, Invoice.created_at)  # the page is chosen from the matches alone
        total_and_rows = None
        if not text:
            found = ids.cte("matches")
        else:
            tests = _TermTests(dialect, kind, short)
            if short and kind != "email":
                found = cls._matches_in_one_scan(ids, tests)
            elif kind in ("uuid", "hex"):
                found = cls._matches_by_id(ids, tests)
            else:
                # (the others' rows keyed for the likeliest branch's condition)
                keyed = invoices(Invoice.id, Invoice.created_at, Invoice.user_id)
                found, total_and_rows = cls._matches_likeliest_first(ids, keyed, tests,
                                                                     whole_list=not by_user and not open_only)
        if found is not None:
            total = select(func.count().label("matches_total")).select_from(found).subquery("total")
            chosen = paged(select(found.c.id).order_by(found.c.created_at.desc(), found.c.id.desc())
                           ).subquery("chosen")
            total_and_rows = total, cls._rows_of(chosen, dialect).subquery("page")
        total, rows = total_and_rows
        # the page's subscription number and email looked up per row of the page (at most `limit` primary-key
        # reads), not joined before the limit: the generic plan of the prepared statement cannot know how many
        # ids match and hash-joined every user
        number = select(Subscription.number).where(Subscription.id == rows.c.subscription_id).correlate(rows)
        email = select(User.email).where(User.id == rows.c.user_id).correlate(rows)
        statement = (
            select(total.c.matches_total, *rows.c, number.scalar_subquery().label("subscription_number"),
                   email.scalar_subquery().label("user_email"), InvoiceCountRepository.list_version_column())
            .select_from(total.outerjoin(rows, true()))
            .order_by(rows.c.created_at.desc(), rows.c.id.desc()))
        if text and kind != "hex":
            # a pattern, an invoice-number prefix or a whole id (not a hex fragment: a short one such as "ab" ran
            # twice as long on the generic plan, 229 -> 467 ms, matching a fifth of the ids): planned once per connection
            # (`generic_plan`). A custom plan per search cost PostgreSQL 0.55-0.65 ms of planning against ~0.2 ms of
            # execution; the plan for unknown values ran as fast or faster for every term measured but one pattern
            # matching every invoice, for every number prefix measured, down to one matching all 100,000, and for whole
            # ids (docs/performance.md, "The admin search's tail, ..." and "The number-prefix search on the generic plan")
            statement = generic_plan(statement)
        cls._searches[key] = statement
        return statement

    @staticmethod
    def _matches_in_one_scan(ids: Select[Any], tests: _TermTests) -> Any:
        """The matches of a short term a number or an id can hold, as a CTE. Every invoice is read whatever the shape
        (no index serves a term this short), so once: each invoice tested against its owners and subscriptions
        matched beforehand (hashed: users and subscriptions are scanned once each, not per invoice), its number,
        then its id's text (the dearest test, last). An id's text is lower-case already. A UNION of one branch per
        column read the invoices three times and hashed every match (docs/performance.md, "Short terms in one
        scan"). Numbers are written in upper case (`INV-…`, `SUB-…`: `_NUMBER_PREFIX`), so they are searched for the
        term in upper case (`SEARCH_NUMBER_TERM`) as they are: lower() cost more than the rest of the test (20 of
        27 ms over 100,000 numbers)."""
        as_numbers = bindparam(InvoiceRepository.SEARCH_NUMBER_TERM, type_=String)
        hex_term = tests.kind == "hex"
        owner = or_(tests.email, tests.holds(tests.id_text(User.id))) if hex_term else tests.email
        conditions = [Invoice.user_id.in_(select(User.id).where(owner)), tests.holds(Invoice.invoice_number, as_numbers),
                      Invoice.subscription_id.in_(select(Subscription.id)
                                                  .where(tests.holds(Subscription.number, as_numbers))),
                      *([tests.holds(tests.id_text(Invoice.id))] if hex_term else [])]
        return ids.where(or_(*conditions)).cte("matches")

    @staticmethod
    def _matches_by_id(ids: Select[Any], tests: _TermTests) -> Any:
        """The matches of a whole id or a fragment of an id's text, as a CTE: one UNION of a branch per column (an
        id and an owner's id, or a fragment of their text; the e-mail; for a fragment the number and the subscription
        number).

        A whole id's text holds four dashes, an invoice number two and a subscription number one (their formats:
        `_NUMBER_PREFIX`, `_SUBSCRIPTION_PREFIX`):
        no number holds a whole id, so none is read for it. Their trigram indexes, asked for the id's 34 trigrams,
        read posting lists that grow with the table: 19.7 of the 20.7 ms at 1,000,000 invoices (docs/performance.md,
        "Ten times the rows")."""
        if tests.kind == "uuid":
            whole = bindparam(InvoiceRepository.SEARCH_ID, type_=Invoice.id.type)
            return union(tests.by_owner(ids), ids.where(Invoice.id == whole),
                         ids.where(Invoice.user_id == whole)).cte("matches")
        return union(ids.where(tests.number), tests.by_owner(ids, tests.email_or_owner_id), tests.by_subscription(ids),
                     ids.where(tests.invoice_id)).cte("matches")

    @classmethod
    def _matches_likeliest_first(cls, ids: Select[Any], keyed: Select[Any], tests: _TermTests,
                                 whole_list: bool) -> tuple[Any, tuple[Any, Any] | None]:
        """The matches of a term searched by the branch likely to match most (an invoice-number prefix or a run of
        digits, such as a year; else a fragment of e-mails, which can match every invoice of many customers),
        counted as it comes; the others, usually few rows, are deduplicated among themselves and leave out what it
        matched. A branch that reads the invoice's row anyway (by subscription, by the id's text) tests the number
        there, on the row; the others read its condition per row by a primary key, as a scalar subquery kept above
        them (pushed into a branch's join, the generic plan tested it on every invoice before finding no
        subscription). One UNION of all branches put every match in a hash (docs/performance.md, "The admin
        search: the likeliest branch counted as it comes": every email 123-142 -> 84-95 ms, the prefix "inv-" 102
        -> 62 ms, ~1,200 matches 10-40 % less); the primary-key read per match of a subscription number cost ~4 µs
        ("0001": 552 -> 218 ms, "Digits of subscription numbers tested on the row").

        Over the `whole_list` (no owner, no status filter): (None, (the total, the page's rows)) from
        `_broad_or_narrow_page`; else (the matches as a CTE, None). `keyed` selects the others' (id, created_at,
        user_id)."""
        number, email = tests.number, tests.email
        row_others: list[Select[Any]] = []  # branches that read the invoice's row: its number tested there
        if tests.kind in ("number", "dated", "digits"):
            first, condition, table, link = ids.where(number), number, Invoice, "id"
            unmatched = number.is_not(true())
            if tests.kind == "number":  # no id and no subscription number holds "inv-" (`_NUMBER_PREFIX`)
                others = [tests.by_owner(keyed)]
            elif tests.kind == "dated":  # an id can hold a year's dash, no subscription number (`_YEAR_AND_AFTER`)
                others = [tests.by_owner(keyed, tests.email_or_owner_id)]
                row_others = [ids.where(tests.invoice_id, unmatched)]
            else:  # ids and subscription numbers hold digits
                others = [tests.by_owner(keyed, tests.email_or_owner_id)]
                # (the number carried out of the subscription branch and tested above it, behind OFFSET 0: pushed
                # into its join, a plan that hashed the matched subscriptions tested every invoice it read)
                carried = (tests.by_subscription(ids.add_columns(Invoice.invoice_number))
                           .offset(literal_column("0")).subquery("by_subscription"))
                row_others = [select(carried.c.id, carried.c.created_at)
                              .where(tests.matches(carried.c.invoice_number).is_not(true())),
                              ids.where(tests.invoice_id, unmatched)]
        else:
            first, condition, table, link = tests.by_owner(ids), email, User, "user_id"
            if tests.kind == "email":  # only an e-mail can hold it (`search_kind`): no number or id is read, short or long
                others = []
            elif tests.kind == "subscription":  # no invoice number holds "sub-" (`_SUBSCRIPTION_PREFIX`)
                others = [tests.by_subscription(keyed)]
            else:
                others = [keyed.where(number), tests.by_subscription(keyed)]
        parts = list(row_others)
        if others:
            # (behind OFFSET 0: the primary-key test stays above the branch, read per matched row; pushed into a
            # lone branch's scan, a generic plan could test it on every invoice of the tenant)
            rest = (union(*others) if len(others) > 1 else others[0].offset(literal_column("0"))).subquery("rest")
            matched_first = select(condition).where(table.id == rest.c[link]).scalar_subquery()
            parts.insert(0, select(rest.c.id, rest.c.created_at).where(matched_first.is_not(true())))
        not_first = parts[0] if len(parts) == 1 else None
        if len(parts) > 1:
            united = union(*parts).subquery("not_first")
            not_first = select(united.c.id, united.c.created_at)
        if not whole_list:
            return (first if not_first is None else union_all(first, not_first)).cte("matches"), None
        if tests.kind in ("number", "dated", "digits"):  # a prefix from the (covering, 0031) index alone; digits by
            # trigrams
            likeliest = _Likeliest(cls.scoped(func.count()).where(number), number, first)
        else:
            customers = UserRepository.scoped(User.id).where(email).cte("matched_customers")
            owned = ids.join(customers, customers.c.id == Invoice.user_id).cte("matched_by_email")
            many = (select(func.count()).select_from(customers).scalar_subquery()
                    > literal_column(str(int(cls.COUNTERS_ABOVE_CUSTOMERS))))
            # only the count of the branch CASE takes is run (PostgreSQL runs a subquery's plan when its value is
            # first needed)
            counted = case((many, InvoiceUserCountRepository.invoices_of_query(customers).scalar_subquery()),
                           else_=select(func.count()).select_from(owned).scalar_subquery())
            likeliest = _Likeliest(select(counted), Invoice.user_id.in_(select(customers.c.id)),
                                   select(owned.c.id, owned.c.created_at))
        return None, cls._broad_or_narrow_page(ids, likeliest, not_first, tests.dialect)

    @classmethod
    def _broad_or_narrow_page(cls, ids: Select[Any], likeliest: _Likeliest, otherwise: Select[Any] | None,
                              dialect: str) -> tuple[Any, Any]:
        """The total and the page's rows of a term searched over the whole list (no owner or status filter), whose
        cost follows what `likeliest` counts and the page, not every matched invoice:

        * the total: `likeliest.count` (the e-mail branch: the matched customers' invoice counters, one read per
          customer, when they are many — `COUNTERS_ABOVE_CUSTOMERS` —, else the matches it gathers; the
          number-prefix branch: a count from its index alone) plus the invoices the other branches alone match
          (`otherwise`, usually few; None when no other branch can match: a term only e-mails hold);
        * the page: for a term matching many invoices, the tenant's invoices newest first (the index on
          (tenant, created_at, id)) kept while `likeliest.holds` or the others matched them, until the page is
          full: about (limit + offset) × (tenant's invoices / matches) rows read. For a term matching few, the
          matches gathered and sorted, as the other searches do: about as many rows as match. The walk is
          chosen when it reads fewer, matches² ≥ (limit + offset) × tenant's invoices, decided in the statement
          from the total (each page is a branch behind a one-time filter; the other is not run).

        A term held by every e-mail of 100,000 invoices read them all, matched and sorted them (93–142 ms; now
        38–48: docs/performance.md, "Broad search terms")."""
        rest = otherwise.cte("matched_otherwise") if otherwise is not None else None
        counted = likeliest.count.scalar_subquery()
        if rest is not None:
            counted = select(counted + select(func.count()).select_from(rest).scalar_subquery()).scalar_subquery()
        total = select(counted.label("matches_total")).cte("total")
        matches = select(total.c.matches_total).scalar_subquery()
        invoices = InvoiceCountRepository.total_query().scalar_subquery()
        # in floating point: limit + offset may be as large as MAX_ROWS (no limit) and its product overflow an integer
        walk = (cast(matches, Float) * cast(matches, Float)
                >= (cast(bindparam(PAGE_LIMIT, type_=BigInteger), Float) + cast(bindparam(PAGE_OFFSET, type_=BigInteger), Float))
                * cast(func.coalesce(invoices, 0), Float))
        # the walk reads the page's rows as it goes; the gathered ids are read back by primary key (`_rows_of`)
        # a condition the walk tests on each row it reads, newest first, until the page is full: alone, an IN
        # (subquery) would be turned into a join with every match sorted (every e-mail: 23 -> 167 ms), so it is
        # kept behind IS TRUE, which PostgreSQL does not rewrite (an OR with the others' matches did the same)
        holds = (likeliest.holds.is_(true()) if rest is None else
                 or_(likeliest.holds, Invoice.id.in_(select(rest.c.id))))
        walked = paged(cls.scoped(*cls.listed_columns()).where(holds, walk)
                       .order_by(Invoice.created_at.desc(), Invoice.id.desc()))
        gathered = (likeliest.gathered if rest is None else
                    union_all(likeliest.gathered, select(rest.c.id, rest.c.created_at))).subquery("gathered")
        sorted_ids = paged(select(gathered.c.id).where(~walk)
                           .order_by(gathered.c.created_at.desc(), gathered.c.id.desc())).subquery("sorted")
        walked = walked.subquery("walked")
        return total, union_all(select(*walked.c), cls._rows_of(sorted_ids, dialect)).subquery("page")

    @classmethod
    def _rows_of(cls, chosen: Any, dialect: str) -> Select[Any]:
        """The listed columns of the invoices whose ids `chosen` (a subquery with an `id` column: a page) holds. On
        PostgreSQL as `id = ANY(ARRAY(chosen))`, read by primary key whatever the estimates: joined, a generic plan
        that expected many matches hashed every invoice of the table for a page of none (a short term: 50 ms)."""
        listed = select(*cls.listed_columns())
        if dialect == "postgresql":
            return listed.where(Invoice.id == any_(func.array(select(chosen.c.id).scalar_subquery())))
        return listed.select_from(chosen.join(Invoice, Invoice.id == chosen.c.id))

    def _page_statement(self, *, limit: int, offset: int, search: str | None, user_id: uuid.UUID | None,
                        open_only: bool) -> tuple[Select[Any], dict[str, Any], str]:
        """The statement of an admin page (built once per variant), its parameters, and the column of its rows that
        carries the total: the tenant's newest invoices (`_latest_page`) when nothing filters, else a search
        (`_search_statement`)."""
        params: dict[str, Any] = paging(limit, offset)
        fragment = search.strip().lower() if search else ""
        if not fragment and user_id is None and not open_only:
            return first_page_of(self._latest_page, params), params, "tenant_total"
        kind = self.search_kind(fragment) if fragment else None
        if fragment:
            params.update(self.search_term_values(fragment, kind))
        if user_id is not None:
            params[self.SEARCH_USER] = user_id
        statement = self._search_statement(self.session.bind.dialect.name, user_id is not None, open_only, kind,
                                           bool(fragment), self.is_short(fragment))
        return statement, params, "matches_total"

    @classmethod
    def is_short(cls, fragment: str) -> bool:
        """A term no trigram index serves (`TRIGRAM`)."""
        return 0 < len(fragment) < cls.TRIGRAM

    @classmethod
    def search_term_values(cls, fragment: str, kind: str | None) -> dict[str, Any]:
        """The values of `_search_statement`'s parameters for a (lower-case, stripped, non-empty) term of `kind`."""
        values: dict[str, Any] = {}
        if cls.is_short(fragment):
            values[cls.SEARCH_TERM] = fragment
            # an upper-cased non-ASCII character may turn ASCII ("ı" -> "I"); numbers hold ASCII only, so such a
            # term is searched as it is, which none holds
            values[cls.SEARCH_NUMBER_TERM] = fragment.upper() if fragment.isascii() else fragment
        else:
            escaped = "".join(_LIKE_ESCAPE + char if char in _LIKE_SPECIAL else char for char in fragment)
            values[cls.SEARCH_PATTERN] = f"%{escaped}%"
        if kind == "uuid":
            values[cls.SEARCH_ID] = uuid.UUID(fragment)
        elif kind in ("number", "dated", "subscription"):  # ASCII by their patterns: the next character of the
            # last one ends the range; subscription numbers are compared as written, in upper case
            prefix = {"number": fragment, "dated": f"inv-{fragment}", "subscription": fragment.upper()}[kind]
            values[cls.SEARCH_NUMBER_FROM] = prefix
            values[cls.SEARCH_NUMBER_TO] = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return values

    async def _total_of(self, rows: Sequence[Any], total_column: str) -> int:
        """The total the page's rows carry; a page past the last invoice of the tenant reads the counter."""
        if rows and getattr(rows[0], total_column) is not None:
            return int(getattr(rows[0], total_column))
        if total_column == "tenant_total":
            return int(await InvoiceCountRepository(self.session).total() or 0)
        return 0

    async def search_page(self, *, limit: int, offset: int, search: str | None, user_id: uuid.UUID | None,
                          open_only: bool) -> tuple[list[tuple[Any, str | None, str | None]], int]:
        """(invoice record (read-only), subscription number, user email) rows newest first, and how many match in all. `search`
        matches (case-insensitive) the invoice number, subscription number, email, invoice id or user id."""
        statement, params, total_column = self._page_statement(limit=limit, offset=offset, search=search,
                                                               user_id=user_id, open_only=open_only)
        rows = await self.run(statement, **params)
        listed = [(row, row.subscription_number, row.user_email) for row in rows if row.id is not None]
        return listed, await self._total_of(rows, total_column)

    async def search_page_json(self, *, limit: int, offset: int, search: str | None, user_id: uuid.UUID | None,
                               open_only: bool, shape: Sequence[JsonField]) -> tuple[str, int, int | None]:
        """`search_page` on PostgreSQL with the items as JSON text the database writes (objects of `shape`, the
        contract's AdminInvoiceListItem, from `admin_invoice_view_values`), newest first, the total, and the
        list's version they were read at (`InvoiceCountRepository.list_version`; None for a page past the end of
        the unfiltered list, which reads no row)."""
        statement, params, total_column = self._page_statement(limit=limit, offset=offset, search=search,
                                                               user_id=user_id, open_only=open_only)
        row = await self.run_json(statement, shape, admin_invoice_view_values,
                                  keep=(total_column, "list_version"), **params)
        return row.items, await self._total_of([row], total_column), row.list_version

    @prepared
    def _latest_page(cls) -> Select[Any]:
        """A page of every invoice of the tenant, newest first, with the tenant's total from its counter (not a
        count that grows with the table) on each row."""
        return planned_first_page(paged(
            cls.scoped(*cls.listed_columns(), Subscription.number.label("subscription_number"),
                       User.email.label("user_email"),
                       InvoiceCountRepository.total_query().scalar_subquery().label("tenant_total"),
                       InvoiceCountRepository.list_version_column())
            .outerjoin(Subscription, Subscription.id == Invoice.subscription_id)
            .outerjoin(User, User.id == Invoice.user_id)
            .order_by(Invoice.created_at.desc(), Invoice.id.desc())))

    def _billed_in(self, lower: dt.datetime, upper: dt.datetime, user_id: uuid.UUID | None) -> list[Any]:
        conditions = [Invoice.status.in_(InvoiceStatus.BILLED), Invoice.issued_at >= lower, Invoice.issued_at < upper]
        if user_id is not None:
            conditions.append(Invoice.user_id == user_id)
        return conditions

    def _issue_period(self, group_by: str) -> Any:
        """The UTC issue day (or the first day of its month) as `YYYY-MM-DD`, computed by the database."""
        if self.session.bind.dialect.name == "postgresql":
            pattern = "'YYYY-MM-01'" if group_by == "month" else "'YYYY-MM-DD'"
            return func.to_char(func.timezone(literal_column("'UTC'"), Invoice.issued_at), literal_column(pattern))
        pattern = "'%Y-%m-01'" if group_by == "month" else "'%Y-%m-%d'"
        return func.strftime(literal_column(pattern), Invoice.issued_at)  # SQLite stores UTC without offset

    async def billed_gross_by_period(self, lower: dt.datetime, upper: dt.datetime, group_by: str,
                                     user_id: uuid.UUID | None) -> list[tuple[str, Decimal]]:
        """(period, gross total) of the invoices billed (issued, not void) in [lower, upper), by day or month."""
        period = self._issue_period(group_by).label("period")
        statement = (self.statement(period, self.sum_of(Invoice.total_gross))
                     .where(*self._billed_in(lower, upper, user_id))
                     .group_by(literal_column("period")).order_by(literal_column("period")))
        return [(str(bucket), total) for bucket, total in await self.rows(statement)]

    async def paid_count(self, lower: dt.datetime, upper: dt.datetime, user_id: uuid.UUID | None) -> int:
        return await self.count(*self._billed_in(lower, upper, user_id), Invoice.status == InvoiceStatus.PAID)

    async def billed_gross_by_plan(self, lower: dt.datetime, upper: dt.datetime,
                                   user_id: uuid.UUID | None) -> list[tuple[uuid.UUID, str, Decimal]]:
        """(plan id, plan name, gross) of the billed lines in [lower, upper), each line counted for the plan of
        its own subscription; largest first."""
        gross = self.sum_of(InvoiceLine.line_gross).label("gross")
        statement = (self.statement(ServicePlan.id, ServicePlan.name, gross)
                     .select_from(InvoiceLine)
                     .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
                     .join(Subscription, Subscription.id == InvoiceLine.subscription_id)
                     .join(ServicePlan, ServicePlan.id == Subscription.plan_id)
                     .where(*self._billed_in(lower, upper, user_id))
                     .group_by(ServicePlan.id, ServicePlan.name)
                     .order_by(literal_column("gross").desc(), ServicePlan.name, ServicePlan.id))
        return [(plan_id, name, total) for plan_id, name, total in await self.rows(statement)]

    async def billed_tax_by_country(self, lower: dt.datetime, upper: dt.datetime
                                    ) -> list[tuple[str | None, str | None, str, Decimal, Decimal, Decimal]]:
        """(tax rule, buyer country, EN 16931 category, rate, net, tax) of the billed lines in [lower, upper)."""
        net, tax = self.sum_of(InvoiceLine.line_net).label("net"), self.sum_of(InvoiceLine.line_tax).label("tax")
        keys = (Invoice.tax_rule, Invoice.tax_country, InvoiceLine.vat_category_code, InvoiceLine.tax_rate)
        statement = (self.statement(*keys, net, tax)
                     .select_from(InvoiceLine)
                     .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
                     .where(*self._billed_in(lower, upper, None))
                     .group_by(*keys)
                     .order_by(*keys))
        return [tuple(row) for row in await self.rows(statement)]  # type: ignore[misc]


class _TermTests:
    """How each searched column is tested against a search term of one shape (`InvoiceRepository.search_kind`,
    `is_short`), on the bound parameters of `InvoiceRepository._search_statement`, and the invoices whose owner or
    subscription passes."""

    def __init__(self, dialect: str, kind: str | None, short: bool) -> None:
        self.dialect, self.kind, self.short = dialect, kind, short
        self.pattern = bindparam(InvoiceRepository.SEARCH_PATTERN, type_=String)
        self.term = bindparam(InvoiceRepository.SEARCH_TERM, type_=String)
        self.position = func.strpos if dialect == "postgresql" else func.instr
        if kind in ("number", "dated"):  # an invoice-number prefix (`search_term_values`)
            self.number = InvoiceRepository._starting_with(
                func.lower(Invoice.invoice_number), dialect,
                bindparam(InvoiceRepository.SEARCH_NUMBER_FROM, type_=String),
                bindparam(InvoiceRepository.SEARCH_NUMBER_TO, type_=String))
        else:
            self.number = self.matches(Invoice.invoice_number)
        if kind == "subscription":  # a subscription-number prefix (`search_term_values`), as written
            self.subscription_number = InvoiceRepository._starting_with(
                Subscription.number, dialect, bindparam(InvoiceRepository.SEARCH_NUMBER_FROM, type_=String),
                bindparam(InvoiceRepository.SEARCH_NUMBER_TO, type_=String))
        else:
            self.subscription_number = self.matches(Subscription.number)
        self.email = self.matches(User.email)
        # (the pieces' index, 0034, serves the term alone; it holds pieces as long as any short term, as a test checks)
        if short and kind == "email" and dialect == "postgresql":
            self.email = and_(UserRepository.lower_email_has_piece(self.term), self.email)
        # The owner's id is matched on `users` (its trigram index, 0032), in one branch with the e-mail: a customer's
        # id is one row there and on every one of its invoices here (matched per invoice, "ab" read 100,000 invoice
        # ids: docs/performance.md, "Owner ids matched per customer").
        self.email_or_owner_id = or_(self.email, self.matches(self.id_text(User.id)))
        self.invoice_id = self.matches(self.id_text(Invoice.id))

    def id_text(self, column: Any) -> Any:
        return InvoiceRepository._id_text(column, self.dialect)

    def matches(self, column: Any) -> Any:
        """The column, lower-cased, holds the term. A short term reaches here only for the e-mails (and for the
        conditions the short paths leave unused): its numbers and ids are tested as written (`holds`)."""
        if self.short:
            return self.holds(func.lower(column))
        return func.lower(column).like(self.pattern, escape=_LIKE_ESCAPE)

    def holds(self, column: Any, searched: Any = None) -> Any:
        """The column, as it is written, holds `searched` (by default the short term) at some position."""
        return self.position(column, self.term if searched is None else searched) > 0

    def by_owner(self, chosen: Select[Any], condition: ColumnElement[bool] | None = None) -> Select[Any]:
        """The invoices of `chosen` whose owner's row meets `condition` (by default: the e-mail holds the term)."""
        return chosen.join(User, User.id == Invoice.user_id).where(self.email if condition is None else condition)

    def by_subscription(self, chosen: Select[Any]) -> Select[Any]:
        """The invoices of `chosen` whose subscription's number holds the term."""
        return chosen.join(Subscription, Subscription.id == Invoice.subscription_id).where(self.subscription_number)


class BillingDayRepository(Repository[User]):
    """Who is due on the billing day: found by the database, a page of users at a time (issue #19)."""

    model = User

    def _billing_day(self) -> Any:
        """`User.effective_billing_day` in SQL: the stored day when it is 1..28, else the UTC day of month of
        the registration, capped at 28."""
        if self.session.bind.dialect.name == "postgresql":
            registered = func.extract("day", func.timezone(literal_column("'UTC'"), User.created_at))
        else:  # SQLite stores UTC without offset
            registered = cast(func.strftime(literal_column("'%d'"), User.created_at), Integer)
        return case((User.billing_day_of_month.between(1, 28), User.billing_day_of_month),
                    else_=case((registered > 28, 28), else_=registered))

    async def due_page(self, today: int, missed_before: dict[int, dt.datetime], limit: int,
                       after: uuid.UUID | None, *, lowest: uuid.UUID | None = None,
                       below: uuid.UUID | None = None) -> list[uuid.UUID]:
        """The next `limit` user ids after `after` (and >= `lowest`, < `below` when given; in id order: a keyset
        on the primary key, so every page is an index range however many users there are) who have unbilled open positions or usage costing
        something, and whose billing day is `today` — or who have such a thing recorded before
        `missed_before[their billing day]` (a billing day was missed)."""
        day = self._billing_day()
        threshold = case(*((day == d, literal(moment, OpenPosition.created_at.type)) for d, moment in missed_before.items()))
        positions = select(OpenPosition.id).where(OpenPosition.tenant_id == User.tenant_id,
                                                  OpenPosition.user_id == User.id, OpenPosition.invoice_id.is_(None))
        usage = select(UsageRecord.id).where(UsageRecord.tenant_id == User.tenant_id, UsageRecord.user_id == User.id,
                                             UsageRecord.invoice_id.is_(None), UsageRecord.amount > 0)
        statement = (self.statement(User.id)
                     .where(or_(and_(day == today, or_(positions.exists(), usage.exists())),
                                positions.where(OpenPosition.created_at < threshold).exists(),
                                usage.where(UsageRecord.created_at < threshold).exists()))
                     .order_by(User.id))
        if after is not None:
            statement = statement.where(User.id > after)
        if lowest is not None:
            statement = statement.where(User.id >= lowest)
        if below is not None:
            statement = statement.where(User.id < below)
        return await self.all(page(statement, limit, 0))


class InvoiceLineRepository(Repository[InvoiceLine]):
    model = InvoiceLine

    async def of_invoice(self, invoice_id: uuid.UUID) -> list[InvoiceLine]:
        return await self.all(self.statement().where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.position))

    async def records_of_invoices(self, invoice_ids: Sequence[uuid.UUID]) -> list[Any]:
        """The lines of several invoices as plain records (`record()`), in one query; each invoice's in invoice order
        (uq_invoice_lines_invoice_position serves it)."""
        return await self.all(self.statement(self.record()).where(InvoiceLine.invoice_id.in_(invoice_ids))
                              .order_by(InvoiceLine.invoice_id, InvoiceLine.position))

    async def delete_of_invoice(self, invoice_id: uuid.UUID) -> None:
        await self.execute(self.delete(InvoiceLine.invoice_id == invoice_id).execution_options(synchronize_session=False))


class InvoiceAuditLogRepository(Repository[InvoiceAuditLog]):
    model = InvoiceAuditLog

    async def page_of_invoice(self, invoice_id: uuid.UUID, limit: int, offset: int) -> tuple[list[InvoiceAuditLog], int]:
        """The invoice's entries, newest first, and how many there are."""
        total = await self.count(InvoiceAuditLog.invoice_id == invoice_id)
        statement = (self.statement().where(InvoiceAuditLog.invoice_id == invoice_id)
                     .order_by(InvoiceAuditLog.created_at.desc(), InvoiceAuditLog.id.desc()))
        return await self.page(statement, limit, offset), total


class MailDeliveryRepository(Repository[MailDelivery]):
    model = MailDelivery

    async def record_once(self, values: dict[str, Any]) -> bool:
        """Insert the delivery unless one with its key exists; True when this one was inserted."""
        await self.insert_if_missing(values, ["tenant_id", "key"])
        stored = await self.one_or_none(self.statement(MailDelivery.id).where(MailDelivery.key == values["key"]))
        return stored == values["id"]

    @staticmethod
    def _claimable(now: dt.datetime) -> ColumnElement[bool]:
        """Pending, or being sent by a sender whose lease ran out (it died)."""
        return or_(MailDelivery.status == MailStatus.PENDING,
                   (MailDelivery.status == MailStatus.SENDING) & (MailDelivery.lease_until < now))

    async def claim_many(self, delivery_ids: Sequence[uuid.UUID], now: dt.datetime, lease: dt.timedelta,
                         token: uuid.UUID) -> list[MailDelivery]:
        """Make the deliveries ours (under `token`) until now + lease, in one statement: those pending, or being
        sent by a sender whose lease ran out; the ones we got, in the given order (the others are sent, or
        someone else holds them)."""
        claimed = await self.execute(
            self.update(MailDelivery.id.in_(delivery_ids), self._claimable(now), status=MailStatus.SENDING,
                        claimed_at=now, claim_token=token, lease_until=now + lease, attempts=MailDelivery.attempts + 1)
            .returning(MailDelivery).execution_options(synchronize_session=False))
        by_id = {delivery.id: delivery for delivery in claimed.scalars()}
        return [by_id[delivery_id] for delivery_id in delivery_ids if delivery_id in by_id]

    async def renew_claimed(self, token: uuid.UUID, lease_until: dt.datetime) -> bool:
        """Extend the lease of every delivery still held under `token`; False when none is."""
        renewed = await self.execute(self.update(MailDelivery.claim_token == token,
                                                 MailDelivery.status == MailStatus.SENDING, lease_until=lease_until))
        return renewed.rowcount > 0

    async def pending_ids(self, keys: Sequence[str]) -> list[uuid.UUID]:
        """The deliveries recorded under `keys` that are still pending, oldest first (the order they are sent in)."""
        return await self.all(self.statement(MailDelivery.id).where(MailDelivery.key.in_(keys),
                                                                    MailDelivery.status == MailStatus.PENDING)
                              .order_by(MailDelivery.created_at, MailDelivery.id))

    async def update_claimed(self, delivery_id: uuid.UUID, token: uuid.UUID, **values: Any) -> bool:
        """Change the delivery while our claim holds; False when it was taken from us."""
        changed = await self.execute(self.update(MailDelivery.id == delivery_id, MailDelivery.claim_token == token,
                                                 MailDelivery.status == MailStatus.SENDING, **values))
        return changed.rowcount == 1

    async def advance(self, token: uuid.UUID, sent: Sequence[uuid.UUID], started: uuid.UUID | None,
                      now: dt.datetime, lease_until: dt.datetime) -> set[uuid.UUID]:
        """ONE statement for a sender between two SMTP transactions: the deliveries `sent` become `sent`, and
        `started`'s SMTP transaction starts now (its lease renewed) — those of them still held under `token`;
        the ids it changed (the others were taken from us)."""
        if not sent and started is None:
            return set()
        was_sent = MailDelivery.id.in_(sent) if sent else literal(False)
        statement = self.update(
            MailDelivery.id.in_([*sent, *([started] if started is not None else [])]),
            MailDelivery.claim_token == token, MailDelivery.status == MailStatus.SENDING,
            status=case((was_sent, MailStatus.SENT), else_=MailDelivery.status),
            sent_at=case((was_sent, now), else_=MailDelivery.sent_at),
            last_error=case((was_sent, None), else_=MailDelivery.last_error),
            lease_until=case((was_sent, None), else_=lease_until),
            smtp_started_at=case((was_sent, MailDelivery.smtp_started_at), else_=now),
        ).returning(MailDelivery.id)
        connection = await self.session.connection()
        return set((await connection.execute(statement)).scalars())

    async def retry_ids(self, now: dt.datetime, max_attempts: int, retry_after: dt.timedelta,
                        limit: int, *, rendered_first: str, render_claimed_after: dt.datetime) -> list[uuid.UUID]:
        """Deliveries to send now: pending for a moment (a fresh one is being sent by the process that recorded
        it), or abandoned by a sender that died; attempts left. Not the mails of kind `rendered_first` whose
        invoice's PDF task is pending, or being rendered under a claim made after `render_claimed_after`: the
        render job sends them with the PDF it makes — taken here during a long billing day's backlog, each PDF
        would be rendered a second time, on demand (issue #19)."""
        unrendered = exists().where(
            InvoiceDocumentTask.invoice_id == MailDelivery.invoice_id,
            or_(InvoiceDocumentTask.status == DocumentStatus.PENDING,
                (InvoiceDocumentTask.status == DocumentStatus.RENDERING)
                & (InvoiceDocumentTask.claimed_at > render_claimed_after)))
        statement = (self.statement(MailDelivery.id)
                     .where(MailDelivery.attempts < max_attempts,
                            or_((MailDelivery.status == MailStatus.PENDING) & (MailDelivery.created_at < now - retry_after),
                                (MailDelivery.status == MailStatus.SENDING) & (MailDelivery.lease_until < now)),
                            ~((MailDelivery.kind == rendered_first) & unrendered))
                     .order_by(MailDelivery.created_at, MailDelivery.id))
        return await self.all(page(statement, limit, 0))

    async def backlog(self, statuses: Sequence[str]) -> tuple[dict[tuple[str, str], int], dt.datetime | None]:
        """Across every tenant (the operator's metrics): deliveries in `statuses` per (kind, status), and when the
        oldest pending one was recorded."""
        counts = self.in_any_tenant(MailDelivery.kind, MailDelivery.status, func.count()).where(
            MailDelivery.status.in_(statuses)).group_by(MailDelivery.kind, MailDelivery.status)
        oldest = self.in_any_tenant(self.min_of(MailDelivery.created_at)).where(
            MailDelivery.status == MailStatus.PENDING)
        return ({(kind, status): count for kind, status, count in await self.rows(counts)},
                await self.scalar(oldest))

    @staticmethod
    def sent_for_renewal(kind: str) -> ColumnElement[bool]:
        """Condition on `Subscription`: its current renewal's reminder is recorded already."""
        return exists().where(MailDelivery.tenant_id == Subscription.tenant_id,
                              MailDelivery.subscription_id == Subscription.id,
                              MailDelivery.kind == kind,
                              MailDelivery.event_at == Subscription.next_billing_at)


class InvoiceDocumentRepository(Repository[InvoiceDocumentTask]):
    """The render-then-mail tasks of issued invoices (`decabill.invoicing.rendering`)."""

    model = InvoiceDocumentTask

    #: the tables a billing day fills that the render jobs then query per batch
    ISSUED_TABLES = (Invoice, InvoiceLine, InvoiceDocumentTask, MailDelivery)

    async def refresh_statistics(self) -> None:
        """ANALYZE the tables the billing day's issuing just filled (PostgreSQL; elsewhere nothing): planned
        on the statistics from before — a table that grew from nothing to 100,000 rows within minutes, before
        autovacuum (if it runs at all) analyses it again — the render jobs' per-batch statements pick a
        bitmap scan of the tenant index over the whole table (~85 ms per batch of 50, measured) instead of
        the key indexes (< 1 ms)."""
        if self.session.get_bind().dialect.name != "postgresql":
            return
        await self.session.execute(text("ANALYZE " + ", ".join(model.__tablename__ for model in self.ISSUED_TABLES)))

    async def record_once(self, invoice_id: uuid.UUID, now: dt.datetime) -> uuid.UUID | None:
        """The task of `invoice_id` unless it exists; its id, or None when it was recorded before."""
        return await self.insert_if_missing({"id": uuid.uuid4(), "invoice_id": invoice_id,
                                             "status": DocumentStatus.PENDING, "attempts": 0, "created_at": now},
                                            ["invoice_id"])

    @staticmethod
    def _claimable(now: dt.datetime, claim_timeout: dt.timedelta) -> ColumnElement[bool]:
        return or_(InvoiceDocumentTask.status == DocumentStatus.PENDING,
                   (InvoiceDocumentTask.status == DocumentStatus.RENDERING)
                   & (InvoiceDocumentTask.claimed_at < now - claim_timeout))

    async def claim_many(self, now: dt.datetime, claim_timeout: dt.timedelta, limit: int,
                         task_ids: Sequence[uuid.UUID] | None = None,
                         max_attempts: int | None = None) -> list[tuple[uuid.UUID, uuid.UUID, int]]:
        """Mark up to `limit` tasks as ours in one statement — of `task_ids`, or the oldest of the tenant with
        fewer than `max_attempts` — each pending or abandoned while rendering, skipping rows another claim
        holds locked right now; (task id, invoice id, attempts) of each."""
        selection = self.statement(InvoiceDocumentTask.id).where(self._claimable(now, claim_timeout))
        if task_ids is not None:
            selection = selection.where(InvoiceDocumentTask.id.in_(task_ids))
        if max_attempts is not None:
            selection = selection.where(InvoiceDocumentTask.attempts < max_attempts)
        selection = self.for_update(selection.order_by(InvoiceDocumentTask.created_at, InvoiceDocumentTask.id)
                                    .limit(limit), skip_locked=True)
        claimed = await self.execute(
            self.update(InvoiceDocumentTask.id.in_(selection), self._claimable(now, claim_timeout),
                        status=DocumentStatus.RENDERING, claimed_at=now, attempts=InvoiceDocumentTask.attempts + 1)
            .returning(InvoiceDocumentTask.id, InvoiceDocumentTask.invoice_id, InvoiceDocumentTask.attempts)
            .execution_options(synchronize_session=False))
        return [tuple(row) for row in claimed.all()]

    async def mark_rendered(self, task_ids: Sequence[uuid.UUID], now: dt.datetime) -> None:
        """Our claimed tasks whose PDF is stored, in one statement."""
        await self.execute(self.update(InvoiceDocumentTask.id.in_(task_ids),
                                       InvoiceDocumentTask.status == DocumentStatus.RENDERING,
                                       status=DocumentStatus.RENDERED, rendered_at=now, last_error=None)
                           .execution_options(synchronize_session=False))

    async def mark_not_rendered(self, task_id: uuid.UUID, status: str, error: str) -> None:
        await self.execute(self.update(InvoiceDocumentTask.id == task_id,
                                       InvoiceDocumentTask.status == DocumentStatus.RENDERING,
                                       status=status, last_error=error)
                           .execution_options(synchronize_session=False))

    async def due_ids(self, now: dt.datetime, max_attempts: int, retry_after: dt.timedelta,
                      claim_timeout: dt.timedelta, limit: int) -> list[uuid.UUID]:
        """Tasks nobody is working on: pending for a while (their after-commit job was lost with its process)
        or abandoned while rendering, attempts left."""
        statement = (self.statement(InvoiceDocumentTask.id)
                     .where(InvoiceDocumentTask.attempts < max_attempts,
                            or_((InvoiceDocumentTask.status == DocumentStatus.PENDING)
                                & (InvoiceDocumentTask.created_at < now - retry_after),
                                (InvoiceDocumentTask.status == DocumentStatus.RENDERING)
                                & (InvoiceDocumentTask.claimed_at < now - claim_timeout)))
                     .order_by(InvoiceDocumentTask.created_at, InvoiceDocumentTask.id))
        return await self.all(page(statement, limit, 0))

    async def last_error(self, task_ids: Sequence[uuid.UUID]) -> str | None:
        """The error recorded on one of the tasks (they failed alike, or the first tells enough): the oldest task's,
        so the same tasks name the same error."""
        return await self.first(self.statement(InvoiceDocumentTask.last_error).where(
            InvoiceDocumentTask.id.in_(task_ids), InvoiceDocumentTask.last_error.is_not(None))
            .order_by(InvoiceDocumentTask.created_at, InvoiceDocumentTask.id))

    async def unfinished(self) -> int:
        """Tasks of the tenant not rendered yet (pending or rendering)."""
        return await self.count(InvoiceDocumentTask.status.in_((DocumentStatus.PENDING, DocumentStatus.RENDERING)))
