"""Tenant billing figures (behavior.md part B §7.1), each computed by the database in one aggregate query
(COUNT / SUM / GROUP BY) — never by loading invoices into Python. Sums are exact decimals on both
backends (`type_coerce(..., ExactDecimal)`: NUMERIC on PostgreSQL, scaled integers on SQLite) and are
rounded to cents half up once, at the end.

* Summary: subscriptions in status `active`; number and open balance of the invoices that are issued,
  partially paid or overdue; the unbilled total = open positions not invoiced yet plus usage records
  not billed yet (net, what the next billing run would invoice — the same figures as the customer's
  `getInvoicesSummary`, tenant-wide).
* Statistics summary: billed invoices (issued, partially paid, overdue, paid) whose issue time falls in
  [from 00:00:00Z, to 23:59:59.999999Z], gross totals per UTC issue day or month (`YYYY-MM-DD`, months as
  their first day), ascending, only periods with turnover; `totalGross` = their sum; `paidCount` = invoices
  in status paid issued in the range. Defaults: to = today (UTC), from = to − 30 days. Unreadable dates →
  400 `Invalid date range`; from after to → 400 `Invalid date range: from must be before to`.
* By product: the same billed invoices, turnover per service plan, largest first. Attributed per invoice
  *line* to the plan of the line's subscription (an invoice of the billing day covering two subscriptions
  counts for both plans with their own lines — the reference gave the whole invoice to the first one);
  lines without a subscription (manual invoices without one) are not counted. Gross per line = net +
  tax of the line, so the lines of an invoice add up to its total.
* Taxes (what an OSS return needs): the same billed invoices, net and tax per tax rule (decabill/taxes),
  buyer country, EN 16931 category and rate — from what each invoice stored at issue. Invoices issued
  before the tax rules existed have no rule (`taxRule` null).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from decabill import db
from decabill.admin.errors import InvalidDateRange
from decabill.admin.views import (
    BillingSummaryView,
    ProductPoint,
    SeriesPoint,
    StatisticsByProductView,
    StatisticsSummaryView,
    TaxStatisticsItem,
    TaxStatisticsView,
)
from decabill.documents import round_cents
from decabill.identity.principal import Principal
from decabill.invoicing.repository import InvoiceRepository
from decabill.subscriptions.repository import OpenPositionRepository, SubscriptionRepository
from decabill.usage.repository import UsageRecordRepository

DEFAULT_RANGE_DAYS = 30
ZERO = Decimal("0.00")


def _money(value: Decimal | None) -> Decimal:
    return round_cents(value) if value is not None else ZERO


# --- the date range -----------------------------------------------------------------------------------------


def _date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidDateRange() from None


def date_range(from_: str | None, to: str | None, *, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    end = _date(to) or today or db.utcnow().date()
    start = _date(from_) or end - dt.timedelta(days=DEFAULT_RANGE_DAYS)
    if start > end:
        raise InvalidDateRange("from must be before to")
    return start, end


def _bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    utc = dt.timezone.utc
    return (dt.datetime.combine(start, dt.time(), utc), dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), utc))


# --- operations ---------------------------------------------------------------------------------------------


async def billing_summary(principal: Principal) -> BillingSummaryView:
    async with db.transaction() as session:
        active = await SubscriptionRepository(session).count_active()
        open_count, open_total = await InvoiceRepository(session).open_count_and_total()
        positions = await OpenPositionRepository(session).unbilled_total()
        usage = await UsageRecordRepository(session).unbilled_total()
    return BillingSummaryView(
        active_subscriptions_count=int(active), open_overdue_count=int(open_count),
        open_overdue_total=_money(open_total),
        unbilled_total=_money((positions or Decimal(0)) + (usage or Decimal(0))),
    )


async def statistics_summary(principal: Principal, *, from_: str | None = None, to: str | None = None,
                             group_by: str = "day", user_id: uuid.UUID | None = None) -> StatisticsSummaryView:
    group_by = "month" if group_by == "month" else "day"
    start, end = date_range(from_, to)
    lower, upper = _bounds(start, end)
    async with db.transaction() as session:
        found = InvoiceRepository(session)
        rows = await found.billed_gross_by_period(lower, upper, group_by, user_id)
        paid = await found.paid_count(lower, upper, user_id)
    series = [SeriesPoint(bucket, _money(total)) for bucket, total in rows]
    total = round_cents(sum((point.total_gross for point in series), Decimal(0)))
    return StatisticsSummaryView(series=series, total_gross=total, paid_count=int(paid), from_=start, to=end,
                                 group_by=group_by)


async def statistics_by_product(principal: Principal, *, from_: str | None = None, to: str | None = None,
                                user_id: uuid.UUID | None = None) -> StatisticsByProductView:
    start, end = date_range(from_, to)
    lower, upper = _bounds(start, end)
    async with db.transaction() as session:
        rows = await InvoiceRepository(session).billed_gross_by_plan(lower, upper, user_id)
    items = [ProductPoint(plan_id, name, _money(total)) for plan_id, name, total in rows]
    total = round_cents(sum((item.total_gross for item in items), Decimal(0)))
    return StatisticsByProductView(items=items, total_gross=total, from_=start, to=end)


async def statistics_taxes(principal: Principal, *, from_: str | None = None, to: str | None = None
                           ) -> TaxStatisticsView:
    start, end = date_range(from_, to)
    lower, upper = _bounds(start, end)
    async with db.transaction() as session:
        rows = await InvoiceRepository(session).billed_tax_by_country(lower, upper)
    items = [TaxStatisticsItem(rule, country, code, rate, _money(net), _money(tax))
             for rule, country, code, rate, net, tax in rows]
    return TaxStatisticsView(items=items, net_total=round_cents(sum((i.net for i in items), Decimal(0))),
                             tax_total=round_cents(sum((i.tax for i in items), Decimal(0))), from_=start, to=end)
