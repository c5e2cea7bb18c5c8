"""The customer price of a plan (behavior.md part A §4.4), in exact decimals.

    totalPrice = base + base * marginPercent / 100 + marginFixed        (per billing interval, before tax)

Missing parts count as 0. Nothing is rounded — as in the reference, whose preview applies no rounding;
with Decimal there is also no float noise (10 + 10 * 10 / 100 + 2 is exactly 13). Tax is added only
on invoices, never here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from decabill.errors import BadRequest
from decabill.providers import ServerType

ZERO = Decimal(0)
HOURS_PER_DAY = 24


@dataclass(frozen=True)
class PriceBreakdown:
    """Serialised through the spec's `PricingPreviewResponse` (numbers)."""

    base_price: Decimal
    margin_percent: Decimal
    margin_fixed: Decimal
    total_price: Decimal


def customer_price(base: Decimal | None, margin_percent: Decimal | None,
                   margin_fixed: Decimal | None) -> PriceBreakdown:
    base, pct, fixed = base or ZERO, margin_percent or ZERO, margin_fixed or ZERO
    return PriceBreakdown(base, pct, fixed, base + base * pct / 100 + fixed)


def plan_price(plan: Any, base_override: Decimal | None = None) -> PriceBreakdown:
    """The plan's price; `base_override` replaces the plan's own base price (provider-priced plans)."""
    base = base_override if base_override is not None else plan.base_price
    return customer_price(base, plan.margin_percent, plan.margin_fixed)


def provider_base_price(server_type: ServerType, region: str | None, interval_type: str,
                        interval_value: int) -> Decimal:
    """The base price of one billing interval of a plan priced from a provider's server type.

    * `month`: the provider's monthly price × interval value;
    * `hour`: the hourly price × interval value;
    * `day`: the hourly price × 24 × interval value — what the provider itself charges for a day
      (Hetzner and DigitalOcean bill by the hour; their monthly price is only a cap).
    The price is the one of `region` where the provider prices per region (Hetzner locations), else
    its reference price (Hetzner fsn1; DigitalOcean has one price everywhere).
    """
    price = server_type.price_in(region)
    if interval_type == "month":
        unit, which = price.monthly, "monthly"
    else:
        unit, which = price.hourly, "hourly"
        if unit is not None and interval_type == "day":
            unit = unit * HOURS_PER_DAY
    if unit is None:
        raise BadRequest(f"Server type {server_type.id} has no {which} price at the provider")
    return unit * interval_value
