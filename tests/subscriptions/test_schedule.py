"""Billing periods, prorated amounts and cancellation dates (behavior.md part A §6.5, part B §2.4–2.5, D5, D7)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest

from decabill.subscriptions.schedule import amount_for, cancellation_effective_at, period_end

UTC = dt.timezone.utc


@dataclass
class Plan:
    billing_interval_type: str
    billing_interval_value: int = 1
    billing_day_of_month: int | None = None


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("plan, start, end", [
    (Plan("hour", 3), at(2026, 1, 31, 23, 30, 15), at(2026, 2, 1, 2, 30, 15)),
    (Plan("day", 2), at(2026, 2, 27, 10, 0), at(2026, 3, 1, 10, 0)),
    # month, no billing day: periods end on the 1st, at the start's hour and minute, seconds zeroed
    (Plan("month"), at(2026, 1, 20, 10, 5, 37), at(2026, 2, 1, 10, 5)),
    # a period that starts on the anchor is a whole cycle; the interval value counts (quarterly)
    (Plan("month"), at(2026, 2, 1, 10, 5), at(2026, 3, 1, 10, 5)),
    (Plan("month", 3), at(2026, 2, 1, 10, 5), at(2026, 5, 1, 10, 5)),
    # the anchor later in the same month comes first
    (Plan("month", 1, 15), at(2026, 1, 10, 8, 0), at(2026, 1, 15, 8, 0)),
    # day 31 is clamped to the month's length, and back to 31 where the month has it
    (Plan("month", 1, 31), at(2026, 1, 31, 0, 0), at(2026, 2, 28, 0, 0)),
    (Plan("month", 1, 31), at(2026, 2, 28, 0, 0), at(2026, 3, 31, 0, 0)),
    (Plan("month", 1, 29), at(2028, 1, 29, 6, 0), at(2028, 2, 29, 6, 0)),  # leap year
    (Plan("month", 1, 1), at(2026, 12, 5, 0, 0), at(2027, 1, 1, 0, 0)),  # year boundary
])
def test_period_end(plan, start, end):
    assert period_end(plan, start) == end


def test_full_periods_cost_the_period_price_exactly():
    price = Decimal("10.0000")
    assert amount_for(Plan("hour"), price, at(2026, 1, 1, 0, 0, 33), at(2026, 1, 1, 1, 0, 33)) == price
    assert amount_for(Plan("day", 7), price, at(2026, 3, 1), at(2026, 3, 8)) == price
    assert amount_for(Plan("month"), price, at(2026, 2, 1, 9, 0), at(2026, 3, 1, 9, 0)) == price
    # seconds past the anchor do not make a month cost 9.9999
    assert amount_for(Plan("month"), price, at(2026, 2, 1, 9, 0, 59), at(2026, 3, 1, 9, 0)) == price


def test_the_short_first_month_is_prorated_against_its_cycle():
    # January has 31 days: 12 days of a 31-day cycle.
    assert amount_for(Plan("month"), Decimal("31"), at(2026, 1, 20, 0, 0), at(2026, 2, 1, 0, 0)) == Decimal("12.0000")
    # quarterly (Nov 1 - Feb 1 is 92 days): 12 of 92 days
    assert amount_for(Plan("month", 3), Decimal("92"), at(2026, 1, 20), at(2026, 2, 1)) == Decimal("12.0000")


def test_a_period_cut_short_by_cancellation_is_prorated():
    assert amount_for(Plan("day"), Decimal("24"), at(2026, 5, 1, 0, 0), at(2026, 5, 1, 6, 0)) == Decimal("6.0000")
    # February 2026 has 28 days; one week of it
    assert amount_for(Plan("month"), Decimal("28"), at(2026, 2, 1), at(2026, 2, 8)) == Decimal("7.0000")


def test_several_cycles_add_up():
    # from a partial January (12/31) through February (full) to 7 days of March (7/31)
    total = amount_for(Plan("month"), Decimal("31"), at(2026, 1, 20), at(2026, 3, 8))
    assert total == Decimal("12") + Decimal("31") + Decimal("7")


def test_excluded_minutes_are_priced_in_the_cycle_of_the_subscription_they_fall_in():
    # cycles anchored at 00:45 on the 1st: 27/31 of December + (1 d 8 h 15 min)/31 d of January = 9.1431.
    # Suspended from 2 January 09:00 to 2 February 09:00: the 8 h 15 min of 1 February before 09:00 belong to
    # February's cycle (1/28 a day), not to a January cycle anchored at 09:00 — they were once priced that way
    start, suspended, ended = at(2026, 12, 5, 0, 45), at(2027, 1, 2, 9, 0), at(2027, 2, 2, 9, 0)
    charged = amount_for(Plan("month"), Decimal("10"), start, ended, excluded=[(suspended, ended)])
    assert charged == amount_for(Plan("month"), Decimal("10"), start, suspended) == Decimal("9.1431")
    partly = amount_for(Plan("month"), Decimal("28"), at(2026, 2, 1), at(2026, 3, 1),
                        excluded=[(at(2026, 2, 8), at(2026, 2, 15)), (at(2026, 1, 1), at(2026, 1, 2))])
    assert partly == Decimal("21.0000")  # a week of February suspended; a span outside the period counts nothing


def test_amounts_round_half_up_to_four_places():
    assert amount_for(Plan("day", 3), Decimal("1"), at(2026, 1, 1), at(2026, 1, 2)) == Decimal("0.3333")
    assert amount_for(Plan("day", 3), Decimal("2"), at(2026, 1, 1), at(2026, 1, 2)) == Decimal("0.6667")


def test_empty_or_reversed_periods_cost_nothing():
    assert amount_for(Plan("day"), Decimal("5"), at(2026, 1, 2), at(2026, 1, 2)) == 0
    assert amount_for(Plan("day"), Decimal("5"), at(2026, 1, 2), at(2026, 1, 1)) == 0


def test_d5_effective_date():
    now = at(2026, 3, 10, 12, 0)
    end = at(2026, 4, 1, 9, 0)
    month = Plan("month")
    assert cancellation_effective_at(month, end, now, at_period_end=False, notice_days=30) == now
    assert cancellation_effective_at(month, end, now, at_period_end=True, notice_days=0) == end
    assert cancellation_effective_at(month, end, now, at_period_end=True, notice_days=21) == end  # 21.9 days away
    assert cancellation_effective_at(month, end, now, at_period_end=True, notice_days=22) == at(2026, 5, 1, 9, 0)
    assert cancellation_effective_at(month, end, now, at_period_end=True, notice_days=60) == at(2026, 6, 1, 9, 0)
    assert cancellation_effective_at(month, None, now, at_period_end=True, notice_days=5) == now
