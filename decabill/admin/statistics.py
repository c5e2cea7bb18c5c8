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
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from sqlalchemy import func, literal_column, select, type_coerce

from decabill import db
from decabill.admin.errors import InvalidDateRange
from decabill.admin.views import (
    BillingSummaryView,
    ProductPoint,
    SeriesPoint,
    StatisticsByProductView,
    StatisticsSummaryView,
)
from decabill.db import ExactDecimal
from decabill.documents import round_cents
from decabill.identity.principal import Principal
from decabill.tenancy import current_tenant
from models.catalog import ServicePlan
from models.invoicing import Invoice, InvoiceLine, InvoiceStatus, UsageRecord
from models.subscriptions import OpenPosition, Subscription, SubscriptionStatus

DEFAULT_RANGE_DAYS = 30
ZERO = Decimal("0.00")


def _sum(column):
    return type_coerce(func.sum(column), ExactDecimal(4))


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


def _billed_in(start: dt.date, end: dt.date, user_id: uuid.UUID | None) -> list:
    lower, upper = _bounds(start, end)
    conditions = [Invoice.tenant_id == current_tenant(), Invoice.status.in_(InvoiceStatus.BILLED),
                  Invoice.issued_at >= lower, Invoice.issued_at < upper]
    if user_id is not None:
        conditions.append(Invoice.user_id == user_id)
    return conditions


def _period(group_by: str):
    """The UTC issue day (or the first day of its month) as `YYYY-MM-DD`, computed by the database."""
    if db.dialect_name() == "postgresql":
        pattern = "'YYYY-MM-01'" if group_by == "month" else "'YYYY-MM-DD'"
        return func.to_char(func.timezone(literal_column("'UTC'"), Invoice.issued_at), literal_column(pattern))
    pattern = "'%Y-%m-01'" if group_by == "month" else "'%Y-%m-%d'"
    return func.strftime(literal_column(pattern), Invoice.issued_at)  # SQLite stores UTC without offset


# --- operations ---------------------------------------------------------------------------------------------


async def billing_summary(principal: Principal) -> BillingSummaryView:
    tenant = current_tenant()
    async with db.transaction() as session:
        active = (await session.execute(select(func.count(Subscription.id)).where(
            Subscription.tenant_id == tenant, Subscription.status == SubscriptionStatus.ACTIVE))).scalar_one()
        open_count, open_total = (await session.execute(select(func.count(Invoice.id), _sum(Invoice.balance_due)).where(
            Invoice.tenant_id == tenant, Invoice.status.in_(InvoiceStatus.OPEN)))).one()
        positions = (await session.execute(select(_sum(OpenPosition.amount)).where(
            OpenPosition.tenant_id == tenant, OpenPosition.invoice_id.is_(None)))).scalar_one()
        usage = (await session.execute(select(_sum(UsageRecord.amount)).where(
            UsageRecord.tenant_id == tenant, UsageRecord.invoice_id.is_(None), UsageRecord.amount > 0))).scalar_one()
    return BillingSummaryView(
        active_subscriptions_count=int(active), open_overdue_count=int(open_count),
        open_overdue_total=_money(open_total),
        unbilled_total=_money((positions or Decimal(0)) + (usage or Decimal(0))),
    )


async def statistics_summary(principal: Principal, *, from_: str | None = None, to: str | None = None,
                             group_by: str = "day", user_id: uuid.UUID | None = None) -> StatisticsSummaryView:
    group_by = "month" if group_by == "month" else "day"
    start, end = date_range(from_, to)
    conditions = _billed_in(start, end, user_id)
    period = _period(group_by).label("period")
    async with db.transaction() as session:
        rows = (await session.execute(
            select(period, _sum(Invoice.total_gross)).where(*conditions)
            .group_by(literal_column("period")).order_by(literal_column("period")))).all()
        paid = (await session.execute(select(func.count(Invoice.id)).where(
            *conditions, Invoice.status == InvoiceStatus.PAID))).scalar_one()
    series = [SeriesPoint(str(bucket), _money(total)) for bucket, total in rows]
    total = round_cents(sum((point.total_gross for point in series), Decimal(0)))
    return StatisticsSummaryView(series=series, total_gross=total, paid_count=int(paid), from_=start, to=end,
                                 group_by=group_by)


async def statistics_by_product(principal: Principal, *, from_: str | None = None, to: str | None = None,
                                user_id: uuid.UUID | None = None) -> StatisticsByProductView:
    start, end = date_range(from_, to)
    gross = _sum(InvoiceLine.line_gross).label("gross")
    query = (select(ServicePlan.id, ServicePlan.name, gross)
             .select_from(InvoiceLine)
             .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
             .join(Subscription, Subscription.id == InvoiceLine.subscription_id)
             .join(ServicePlan, ServicePlan.id == Subscription.plan_id)
             .where(*_billed_in(start, end, user_id))
             .group_by(ServicePlan.id, ServicePlan.name)
             .order_by(literal_column("gross").desc(), ServicePlan.name, ServicePlan.id))
    async with db.transaction() as session:
        rows = (await session.execute(query)).all()
    items = [ProductPoint(plan_id, name, _money(total)) for plan_id, name, total in rows]
    total = round_cents(sum((item.total_gross for item in items), Decimal(0)))
    return StatisticsByProductView(items=items, total_gross=total, from_=start, to=end)
