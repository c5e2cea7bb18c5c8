"""Billing periods and what a period costs (behavior.md part A §6.5, part B §2.4–2.5, decision D7).

Periods
* `hour` / `day`: a period is `billingIntervalValue` hours / calendar days long, from its start.
* `month`: periods end on the plan's anchor — day `billingDayOfMonth` (default 1, clamped to the length
  of the month) at the hour and minute the subscription started. A period that starts on an anchor
  lasts `billingIntervalValue` months (the catalog prices a month plan as value × the monthly price,
  so the period follows the same value; the reference ignored it). The first period runs from the
  order to the first anchor after it, so it is usually shorter than a full cycle.
* Periods are contiguous: the next one starts where the previous ended, whenever the job that
  advances the schedule happens to run (the reference restarted from "now" and lost time).

Amounts (D7): a period costs the full period price, prorated only where it covers part of a cycle —
the short first period of a month plan, and the last period cut short by a cancellation. Proration
is by whole minutes (`price × minutes covered / minutes of the cycle`), so a start a few seconds past
an anchor does not make a full month cost 9.9999; amounts keep 4 decimal places (ROUND_HALF_UP).
"""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from collections.abc import Sequence
from typing import Protocol

MAX_CYCLES = 1000
AMOUNT_QUANTUM = Decimal("0.0001")


class PlanInterval(Protocol):
    billing_interval_type: str
    billing_interval_value: int
    billing_day_of_month: int | None


def _month_anchor(year: int, month: int, day: int, like: dt.datetime) -> dt.datetime:
    """Day `day` (clamped to the month) of year/month at `like`'s hour and minute, seconds zeroed."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return like.replace(year=year, month=month, day=min(max(day, 1), last), second=0, microsecond=0)


def period_end(plan: PlanInterval, start: dt.datetime) -> dt.datetime:
    value = max(int(plan.billing_interval_value or 1), 1)
    kind = plan.billing_interval_type
    if kind == "hour":
        return start + dt.timedelta(hours=value)
    if kind == "day":
        return start + dt.timedelta(days=value)
    day = plan.billing_day_of_month or 1
    anchor = _month_anchor(start.year, start.month, day, start)
    if anchor == start:  # a period that starts on an anchor is a full cycle
        return _month_anchor(start.year, start.month + value, day, start)
    if anchor > start:
        return anchor
    return _month_anchor(start.year, start.month + 1, day, start)


def cycle_start(plan: PlanInterval, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    """Start of the full cycle that ends at `end` (the period [start, end) may be a part of it)."""
    if plan.billing_interval_type in ("hour", "day"):
        return start
    value = max(int(plan.billing_interval_value or 1), 1)
    return _month_anchor(end.year, end.month - value, plan.billing_day_of_month or 1, end)


def _minutes(moment: dt.datetime) -> int:
    return int(moment.timestamp() // 60)


def amount_for(plan: PlanInterval, period_price: Decimal, start: dt.datetime, end: dt.datetime,
               excluded: Sequence[tuple[dt.datetime, dt.datetime]] = ()) -> Decimal:
    """What [start, end) costs: full cycles at `period_price`, partial cycles prorated by minutes. Minutes in
    `excluded` spans (suspended, not billed) are left out of the cycle they fall in — the cycles are walked
    from `start` once, so an excluded span is priced on the subscription's own anchors, not on cycles
    anchored at the span's start."""
    total = Decimal(0)
    cursor = start
    for _ in range(MAX_CYCLES):
        if end <= cursor:
            break
        cycle_end = period_end(plan, cursor)
        covered_until = min(end, cycle_end)
        covered = _minutes(covered_until) - _minutes(cursor)
        for span_start, span_end in excluded:
            covered -= max(0, _minutes(min(covered_until, span_end)) - _minutes(max(cursor, span_start)))
        length = _minutes(cycle_end) - _minutes(cycle_start(plan, cursor, cycle_end))
        if length <= 0:  # cannot happen with positive intervals; never divide by zero
            total += period_price
            break
        total += period_price * Decimal(max(covered, 0)) / Decimal(length)
        cursor = cycle_end
    return total.quantize(AMOUNT_QUANTUM, rounding=ROUND_HALF_UP)


def cancellation_effective_at(plan: PlanInterval, current_period_end: dt.datetime | None, now: dt.datetime,
                              *, at_period_end: bool, notice_days: int) -> dt.datetime:
    """D5: the first period end at least `notice_days` days away, or now when the plan does not cancel
    at period end (or the subscription has no period yet)."""
    if not at_period_end or current_period_end is None:
        return now
    earliest = now + dt.timedelta(days=max(notice_days, 0))
    end = current_period_end
    for _ in range(MAX_CYCLES):
        if end >= earliest:
            return end
        end = period_end(plan, end)
    return end
