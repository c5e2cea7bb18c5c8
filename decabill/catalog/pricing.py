"""The customer price of a plan (behavior.md part A §4.4), in exact decimals.

    totalPrice = base + base * marginPercent / 100 + marginFixed        (per billing interval, before tax)

The one pricing function is `price_plan`: the price preview, the public catalogue (offerings and the
cheapest one), ordering (the period price fixed on the subscription, which every charge of it bills) all
call it. A plan of a service type whose provider provisions servers is priced from the provider's server
type when the type's schema names a `basePriceFromField` (through the provider's short cache,
PROVIDER_CACHE_SECONDS, so the public catalogue stays fast), else from the plan's own `basePrice` — which
the operator must then have set. A plan that can be priced neither way is refused (`PlanNotPriceable`,
400): it is never listed, previewed or ordered at zero.

Missing parts count as 0. Nothing is rounded — as in the reference, whose preview applies no rounding;
with Decimal there is also no float noise (10 + 10 * 10 / 100 + 2 is exactly 13). Tax is added only
on invoices, never here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from decabill.catalog.errors import PlanNotPriceable
from decabill.errors import BadRequest
from decabill.providers import ServerType, get_registry

GEOGRAPHY_FIELDS = ("region", "location")

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


def price_field(schema: Any) -> str | None:
    """The configuration field whose server type sets the base price (the schema's `basePriceFromField`)."""
    field = schema.get("basePriceFromField") if isinstance(schema, dict) else None
    return field if isinstance(field, str) and field else None


def has_deliberate_price(plan: Any) -> bool:
    return plan.base_price is not None and plan.base_price > 0


def check_priceable(plan: Any, service_type: Any) -> None:
    """What can be told without asking the provider: a plan of a server provider's type that is not priced
    from the provider needs its own positive base price."""
    if get_registry().get(service_type.provider) is None or price_field(service_type.config_schema):
        return
    if not has_deliberate_price(plan):
        raise PlanNotPriceable(plan.name, "its service type's configSchema names no basePriceFromField, so the "
                                          "plan needs a basePrice greater than 0")


async def price_plan(plan: Any, service_type: Any, requested_config: dict[str, Any] | None = None) -> PriceBreakdown:
    """The customer price of one period of `plan` for a configuration (the request's `requestedConfig` laid
    over the plan's `providerConfigDefaults`). Raises `PlanNotPriceable` rather than answer a zero price for
    a server."""
    check_priceable(plan, service_type)
    provider = get_registry().get(service_type.provider)
    field = price_field(service_type.config_schema)
    if provider is None or field is None:  # a product without servers (D24), or a price the operator set
        return plan_price(plan)
    defaults = plan.provider_config_defaults if isinstance(plan.provider_config_defaults, dict) else {}
    config = {**defaults, **(requested_config or {})}
    chosen = config.get(field)
    if not isinstance(chosen, str) or not chosen:
        if has_deliberate_price(plan):
            return plan_price(plan)
        raise PlanNotPriceable(plan.name, f"no {field} is chosen, so the provider cannot price it, and the plan "
                                          f"has no basePrice greater than 0")
    server_type = next((t for t in await provider.server_types() if t.id == chosen), None)
    if server_type is None:
        raise BadRequest(f"Server type {chosen} is not offered by {provider.display_name}")
    # The customer's own location counts only where the plan lets customers choose it.
    region_source = config if plan.allow_customer_location_selection else defaults
    region = next((region_source[f] for f in GEOGRAPHY_FIELDS if isinstance(region_source.get(f), str)), None)
    base = provider_base_price(server_type, region, plan.billing_interval_type, plan.billing_interval_value)
    if base <= 0:
        raise PlanNotPriceable(plan.name, f"the provider has no price for server type {chosen}")
    return plan_price(plan, base)
