"""Usage records (behavior.md part B §5, decision D8).

* `record_usage` stores a measured period of one of the caller's own subscriptions (another user's or an
  unknown one: 404). Its cost is read from the payload once, when it is recorded: `totalCost`, else
  `usageCost`, else `units × unitPrice`, else 0 (numbers or numeric strings), rounded half up to cents.
  A money field that is present must be valid money (finite, at most 4 places, within ±10^10; NaN,
  Infinity, `abc` are 400), never stored as 0.
* D8: a record with a positive cost is billed exactly once — on the owner's next billing day, or by an
  admin's `createInvoice` for its subscription, whichever comes first (it then carries that invoice's id).
  Records costing nothing (or a negative amount) are kept as information and never billed.
* Beyond the reference: `periodEnd` may not be before `periodStart` (an e-invoice's service period must
  not end before it starts, EN 16931 BR-29), the payload must be JSON every backend stores (no NUL
  characters, at most USAGE_PAYLOAD_MAX_BYTES as compact JSON), and a cost must stay within ±10^10.
* `usage_summary` returns the newest record (the reference's "summary"), or epoch timestamps and an empty
  payload when there is none.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from decabill import db
from decabill.config import get_settings
from decabill.validation import decimal_number, json_value, money, timestamp
from decabill.errors import BadRequest
from decabill.identity.principal import Principal
from decabill.subscriptions.service import find_own_subscription
from decabill.usage.repository import UsageRecordRepository
from models.invoicing import UsageRecord

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
COST_LIMIT = Decimal(10) ** 10
CENT = Decimal("0.01")


@dataclass(frozen=True)
class UsageSummaryView:
    subscription_id: uuid.UUID
    period_start: dt.datetime
    period_end: dt.datetime
    usage_payload: dict[str, Any]


def _timestamp(value: str, label: str) -> dt.datetime:
    return timestamp(value, label)


def _field(payload: dict[str, Any], name: str, *, is_money: bool = True) -> Decimal | None:
    """A cost field of the payload: absent (or null) → None; present → a valid amount or 400 (never read as 0)."""
    value = payload.get(name)
    if value is None:
        return None
    if is_money:
        return money(value, name, limit=COST_LIMIT, negative=True)
    amount = decimal_number(value, name)
    if abs(amount) >= COST_LIMIT:
        raise BadRequest(f"{name} must be between -{COST_LIMIT} and {COST_LIMIT}")
    return amount


def usage_cost(payload: dict[str, Any]) -> Decimal:
    """The record's net cost in cents: totalCost → usageCost → units × unitPrice → 0. The money fields
    present (`totalCost`, `usageCost`, `unitPrice`) must each be valid money (`validation.money`)."""
    total, usage = _field(payload, "totalCost"), _field(payload, "usageCost")
    units, price = _field(payload, "units", is_money=False), _field(payload, "unitPrice")
    cost = total if total is not None else usage
    if cost is None:
        cost = units * price if units is not None and price is not None else Decimal(0)
    if abs(cost) > COST_LIMIT:
        raise BadRequest(f"Usage cost must be between -{COST_LIMIT} and {COST_LIMIT}")
    return cost.quantize(CENT, rounding=ROUND_HALF_UP)


async def record_usage(principal: Principal, subscription_id: uuid.UUID, period_start: str, period_end: str,
                       payload: dict[str, Any]) -> UsageRecord:
    user_id = principal.require_user_id()
    start, end = _timestamp(period_start, "periodStart"), _timestamp(period_end, "periodEnd")
    problems = []
    if end < start:
        problems.append("periodEnd must not be before periodStart")
    try:
        json_value(payload, "usagePayload")
    except BadRequest as exc:
        problems.append(exc.message)
    limit = get_settings().usage_payload_max_bytes
    if len(json.dumps(payload, separators=(",", ":")).encode()) > limit:
        problems.append(f"usagePayload must be at most {limit} bytes as JSON")
    if problems:
        raise BadRequest("; ".join(problems))
    amount = usage_cost(payload)
    async with db.transaction() as session:
        subscription = await find_own_subscription(user_id, subscription_id)
        record = UsageRecordRepository(session).add(UsageRecord(
            subscription_id=subscription.id, user_id=subscription.user_id, period_start=start, period_end=end,
            usage_payload=payload, amount=amount))
    return record


async def usage_summary(principal: Principal, subscription_id: uuid.UUID) -> UsageSummaryView:
    user_id = principal.require_user_id()
    async with db.transaction() as session:
        await find_own_subscription(user_id, subscription_id)
        latest = await UsageRecordRepository(session).latest_of(subscription_id)
    if latest is None:
        return UsageSummaryView(subscription_id, EPOCH, EPOCH, {})
    return UsageSummaryView(subscription_id, latest.period_start, latest.period_end, latest.usage_payload)
