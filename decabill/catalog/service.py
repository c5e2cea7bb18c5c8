"""The catalog: service types, service plans, the anonymous public catalog, the provider registry as the
API shows it, availability checks and price previews (behavior.md part A §4, decisions D18, D19 and D24).

Reads are open to any authenticated caller, writes to admins (enforced by the handlers' `@admin_only`).
Provider calls never run inside a database transaction: an HTTP round trip to a cloud must not hold
SQLite's write lock or a PostgreSQL connection.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError

from decabill import db
from decabill import validation as check
from decabill.catalog.errors import (
    DuplicateServiceTypeKey,
    LocationSelectionNotSupported,
    NoPublicOfferings,
    ServicePlanNotFound,
    ServiceTypeNotFound,
)
from decabill.catalog.public_cache import EncodedAnswer, bump_version, public_cache
from decabill.catalog.pricing import PriceBreakdown, customer_price, plan_price, provider_base_price
from decabill.catalog.repository import AvailabilitySnapshotRepository, ServicePlanRepository, ServiceTypeRepository
from decabill.errors import BadRequest
from decabill.identity.principal import Principal
from decabill.providers import AvailabilityResult, ServerType, get_registry
from models.catalog import ServicePlan, ServiceType

PUBLIC_DEFAULT_LIMIT, PUBLIC_MAX_LIMIT = 50, 100
GEOGRAPHY_FIELDS = ("region", "location")


# --- service types --------------------------------------------------------------------------------------


async def find_service_type(service_type_id: uuid.UUID, *, lock: bool = False) -> ServiceType:
    """The tenant's service type (joins the caller's transaction); another tenant's id is not found."""
    async with db.transaction() as session:
        found = await ServiceTypeRepository(session).get(service_type_id, for_update=lock)
    if found is None:
        raise ServiceTypeNotFound(service_type_id)
    return found


def _set_service_type_fields(service_type: ServiceType, *, name: str | None, description: str | None,
                             provider: str | None, config_schema: dict | None, is_active: bool | None) -> None:
    if name is not None:
        service_type.name = check.text(name, "Name", max_length=255, required=True)
    if description is not None:
        service_type.description = check.text(description, "Description")
    if provider is not None:
        # Free text (D24): a registered provider provisions servers, any other id is a product without servers.
        service_type.provider = check.text(provider, "Provider", max_length=100, required=True)
    if config_schema is not None:
        service_type.config_schema = check.json_value(config_schema, "Config schema")
    if is_active is not None:
        service_type.is_active = is_active


async def list_service_types(principal: Principal, limit: int = 10, offset: int = 0) -> list[ServiceType]:
    async with db.transaction() as session:
        return await ServiceTypeRepository(session).newest_first(limit, offset)


async def create_service_type(principal: Principal, *, key: str, name: str, provider: str,
                              description: str | None = None, config_schema: dict | None = None,
                              is_active: bool | None = None) -> ServiceType:
    key = check.text(key, "Key", max_length=100, required=True)
    service_type = ServiceType(key=key, name="", provider="")
    _set_service_type_fields(service_type, name=name, description=description, provider=provider,
                             config_schema=config_schema if config_schema is not None else {}, is_active=is_active)
    async with db.transaction() as session:
        service_types = ServiceTypeRepository(session)
        if await service_types.key_taken(key):
            raise DuplicateServiceTypeKey(key)
        try:
            await service_types.create(service_type)
        except IntegrityError:  # created concurrently by another request
            raise DuplicateServiceTypeKey(key) from None
        await bump_version(session)
    return service_type


async def get_service_type(principal: Principal, service_type_id: uuid.UUID) -> ServiceType:
    async with db.transaction():
        return await find_service_type(service_type_id)


async def update_service_type(principal: Principal, service_type_id: uuid.UUID, *, name: str | None = None,
                              description: str | None = None, provider: str | None = None,
                              config_schema: dict | None = None, is_active: bool | None = None) -> ServiceType:
    async with db.transaction() as session:
        service_type = await find_service_type(service_type_id, lock=True)
        _set_service_type_fields(service_type, name=name, description=description, provider=provider,
                                 config_schema=config_schema, is_active=is_active)
        service_type.touch()
        await bump_version(session)
    return service_type


async def delete_service_type(principal: Principal, service_type_id: uuid.UUID) -> None:
    """Refused (409) while plans of the type exist: deleting them along with the type (the reference's
    cascade) would silently take a whole price list away; the admin deletes or deactivates plans first."""
    async with db.transaction() as session:
        service_type = await find_service_type(service_type_id, lock=True)
        await ServiceTypeRepository(session).remove_unreferenced(service_type, "Service type",
                                                                 "delete its service plans first")
        await bump_version(session)


# --- providers ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderDetail:
    """Serialised through the spec's `ProviderDetail`."""

    id: str
    display_name: str
    config_schema: dict[str, Any] | None


def provider_details(principal: Principal) -> list[ProviderDetail]:
    return [ProviderDetail(p.id, p.display_name, p.config_schema()) for p in get_registry()]


async def provider_server_types(principal: Principal, provider_id: str) -> list[ServerType]:
    """The sizes a provider sells now: deprecated ones and ones not orderable anywhere are left out."""
    provider = get_registry().require(provider_id)
    return [t for t in await provider.server_types() if t.orderable]


# --- availability (behavior.md part A §4.7, decision D18) -----------------------------------------------
# The service type's own provider is asked — Hetzner and DigitalOcean really; a service type whose provider is
# not registered (a product without provisioning, D24) is always available. Every check leaves an audit snapshot.


SNAPSHOT_TEXT_LIMIT = 255


def _storable(value: str) -> str:
    """Audit columns take what the caller sent, trimmed to the column and free of NUL characters."""
    value = value.replace("\x00", "")[:SNAPSHOT_TEXT_LIMIT]
    return value.encode("utf-8", "replace").decode("utf-8")


async def check_availability(principal: Principal, service_type_id: uuid.UUID, region: str, server_type: str,
                             requested_config: dict[str, Any] | None = None) -> AvailabilityResult:
    """`requestedConfig` is accepted as in the reference; the provider is the service type's (D18), not
    `requestedConfig.provider`."""
    async with db.transaction():
        service_type = await find_service_type(service_type_id)
    provider = get_registry().get(service_type.provider)
    if provider is None:
        result = AvailabilityResult(True)
    else:
        result = await provider.check_availability(region, server_type)
    async with db.transaction() as session:
        AvailabilitySnapshotRepository(session).record(
            service_type_id=service_type.id, provider=_storable(service_type.provider),
            region=_storable(region), server_type=_storable(server_type), is_available=result.is_available,
            reason=result.reason, raw_response=json.loads(json.dumps(result.raw or {}, default=str)),
        )
    return result


# --- service plans --------------------------------------------------------------------------------------


async def find_service_plan(plan_id: uuid.UUID, *, lock: bool = False) -> ServicePlan:
    """The tenant's plan (joins the caller's transaction); another tenant's id is not found."""
    async with db.transaction() as session:
        found = await ServicePlanRepository(session).get(plan_id, for_update=lock)
    if found is None:
        raise ServicePlanNotFound(plan_id)
    return found


def _has_geography_enum(schema: Any) -> bool:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return False
    for name in GEOGRAPHY_FIELDS:
        field = properties.get(name)
        if isinstance(field, dict) and field.get("type") == "string":
            values = field.get("enum")
            if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
                return True
    return False


def _check_location_selection(service_type: ServiceType) -> None:
    """Customers may pick the location only where a schema lists the choices (behavior.md §4.3)."""
    provider = get_registry().get(service_type.provider)
    if _has_geography_enum(service_type.config_schema):
        return
    if provider is not None and _has_geography_enum(provider.config_schema()):
        return
    raise LocationSelectionNotSupported()


PLAN_FIELDS = (
    "name", "description", "billing_interval_type", "billing_interval_value", "billing_day_of_month",
    "cancel_at_period_end", "min_commitment_days", "notice_days", "base_price", "margin_percent", "margin_fixed",
    "provider_config_defaults", "ordering_highlights", "is_active", "allow_customer_location_selection",
)


def _set_plan_fields(plan: ServicePlan, fields: dict[str, Any]) -> None:
    """Validate and apply the given fields (None = not sent; the contract has no nullable plan input)."""
    unknown = set(fields) - set(PLAN_FIELDS)
    if unknown:
        raise TypeError(f"unknown service plan fields: {sorted(unknown)}")
    values = {k: v for k, v in fields.items() if v is not None}
    if "name" in values:
        plan.name = check.text(values["name"], "Name", max_length=255, required=True)
    if "description" in values:
        plan.description = check.text(values["description"], "Description")
    if "billing_interval_type" in values:
        plan.billing_interval_type = values["billing_interval_type"]  # enum checked by the spec
    if "billing_interval_value" in values:
        plan.billing_interval_value = check.bounded_int(
            values["billing_interval_value"], "billingIntervalValue", 1, check.MAX_INTERVAL_VALUE)
    if "billing_day_of_month" in values:
        plan.billing_day_of_month = check.bounded_int(values["billing_day_of_month"], "billingDayOfMonth", 1, 31)
    if "cancel_at_period_end" in values:
        plan.cancel_at_period_end = values["cancel_at_period_end"]
    for name, label in (("min_commitment_days", "minCommitmentDays"), ("notice_days", "noticeDays")):
        if name in values:
            setattr(plan, name, check.bounded_int(values[name], label, 0, check.MAX_DAYS))
    for name, label, limit in (("base_price", "Base price", check.PRICE_LIMIT),
                               ("margin_percent", "Margin percent", check.PERCENT_LIMIT),
                               ("margin_fixed", "Margin fixed", check.PRICE_LIMIT)):
        if name in values:
            setattr(plan, name, check.decimal_string(values[name], label, limit=limit))
    if "provider_config_defaults" in values:
        plan.provider_config_defaults = check.json_value(values["provider_config_defaults"], "Provider config defaults")
    if "ordering_highlights" in values:
        plan.ordering_highlights = check.ordering_highlights(values["ordering_highlights"])
    if "is_active" in values:
        plan.is_active = values["is_active"]
    if "allow_customer_location_selection" in values:
        plan.allow_customer_location_selection = values["allow_customer_location_selection"]


async def list_service_plans(principal: Principal, limit: int = 10, offset: int = 0,
                             service_type_id: uuid.UUID | None = None) -> list[ServicePlan]:
    """Newest first; the service type filter applies before paging (the reference filtered the page)."""
    async with db.transaction() as session:
        return await ServicePlanRepository(session).newest_first(limit, offset, service_type_id)


async def create_service_plan(principal: Principal, *, service_type_id: uuid.UUID, **fields: Any) -> ServicePlan:
    plan = ServicePlan(service_type_id=service_type_id, name="", billing_interval_type="month")
    _set_plan_fields(plan, fields)
    async with db.transaction() as session:
        service_type = await find_service_type(service_type_id)
        if plan.allow_customer_location_selection:
            _check_location_selection(service_type)
        await ServicePlanRepository(session).create(plan)
        await bump_version(session)
    return plan


async def get_service_plan(principal: Principal, plan_id: uuid.UUID) -> ServicePlan:
    async with db.transaction():
        return await find_service_plan(plan_id)


async def update_service_plan(principal: Principal, plan_id: uuid.UUID, **changes: Any) -> ServicePlan:
    async with db.transaction() as session:
        plan = await find_service_plan(plan_id, lock=True)
        _set_plan_fields(plan, changes)
        if changes.get("allow_customer_location_selection") is True:
            _check_location_selection(await find_service_type(plan.service_type_id))
        plan.touch()
        await bump_version(session)
    return plan


async def delete_service_plan(principal: Principal, plan_id: uuid.UUID) -> None:
    async with db.transaction() as session:
        plan = await find_service_plan(plan_id, lock=True)
        await ServicePlanRepository(session).remove_unreferenced(plan, "Service plan",
                                                                 "set isActive to false to stop selling it instead")
        await bump_version(session)


# --- public catalog (no authentication) -----------------------------------------------------------------


@dataclass(frozen=True)
class PublicOffering:
    """Serialised through the spec's `PublicServicePlanOffering`: no base price, margins or provider config."""

    id: uuid.UUID
    name: str
    description: str | None
    service_type_id: uuid.UUID
    service_type_name: str
    billing_interval_type: str
    billing_interval_value: int
    total_price: Decimal
    ordering_highlights: list[dict[str, str]]
    allow_customer_location_selection: bool


def _offering(plan: ServicePlan, service_type_name: str | None) -> PublicOffering:
    return PublicOffering(
        id=plan.id, name=plan.name, description=plan.description, service_type_id=plan.service_type_id,
        service_type_name=service_type_name or "", billing_interval_type=plan.billing_interval_type,
        billing_interval_value=plan.billing_interval_value, total_price=plan_price(plan).total_price,
        ordering_highlights=list(plan.ordering_highlights or []),
        allow_customer_location_selection=bool(plan.allow_customer_location_selection),
    )


async def list_public_offerings(limit: int = PUBLIC_DEFAULT_LIMIT, offset: int = 0,
                                service_type_id: uuid.UUID | None = None) -> list[PublicOffering]:
    """Active plans of the request's tenant, newest first; the service type's own `isActive` is not
    consulted (as in the reference: deactivate the plans to hide them)."""
    limit = min(max(limit, 1), PUBLIC_MAX_LIMIT)
    async with db.read() as session:
        rows = await ServicePlanRepository(session).active_with_type_name(service_type_id, limit=limit, offset=offset)
    return [_offering(plan, type_name) for plan, type_name in rows]


async def cached_public_answer(query: Hashable, build: Callable[[], Awaitable[bytes]]) -> EncodedAnswer:
    """The encoded answer of a public catalogue read, shared while the tenant's catalogue is unchanged
    (decabill/catalog/public_cache.py); `build` makes it when none is current."""
    return await public_cache.answer(query, build)


async def cheapest_public_offering(service_type_id: uuid.UUID | None = None) -> PublicOffering:
    """The smallest customer price; on a tie the plan whose id sorts first."""
    async with db.read() as session:
        rows = await ServicePlanRepository(session).active_with_type_name(service_type_id)
    if not rows:
        raise NoPublicOfferings()
    offerings = [_offering(plan, type_name) for plan, type_name in rows]
    return min(offerings, key=lambda o: (o.total_price, str(o.id)))


# --- price preview --------------------------------------------------------------------------------------


async def _provider_base_price(service_type: ServiceType, plan: ServicePlan,
                               requested_config: dict[str, Any] | None) -> Decimal | None:
    """The base price from the provider when the service type's schema names a `basePriceFromField`
    (e.g. `serverType`) and the configuration — the request's `requestedConfig` laid over the plan's
    `providerConfigDefaults` — chooses a size; None (use the plan's base price) otherwise.

    Only the service type's own schema counts: an admin who wants fixed prices for a cloud product
    leaves `basePriceFromField` out of the type's schema. Products without a registered provider
    (D24) have no server types to price from.
    """
    schema = service_type.config_schema if isinstance(service_type.config_schema, dict) else {}
    field = schema.get("basePriceFromField")
    if not isinstance(field, str) or not field:
        return None
    defaults = plan.provider_config_defaults if isinstance(plan.provider_config_defaults, dict) else {}
    config = {**defaults, **(requested_config or {})}
    chosen = config.get(field)
    provider = get_registry().get(service_type.provider)
    if not isinstance(chosen, str) or not chosen or provider is None:
        return None
    server_type = next((t for t in await provider.server_types() if t.id == chosen), None)
    if server_type is None:
        raise BadRequest(f"Server type {chosen} is not offered by {provider.display_name}")
    # The customer's own location counts only where the plan lets customers choose it.
    region_source = config if plan.allow_customer_location_selection else defaults
    region = next((region_source[f] for f in GEOGRAPHY_FIELDS if isinstance(region_source.get(f), str)), None)
    return provider_base_price(server_type, region, plan.billing_interval_type, plan.billing_interval_value)


async def preview_price(principal: Principal, plan_id: uuid.UUID | None,
                        requested_config: dict[str, Any] | None = None) -> PriceBreakdown:
    """`totalPrice = base + base * marginPercent / 100 + marginFixed` (see decabill.catalog.pricing);
    without a plan every figure is 0."""
    if plan_id is None:
        return customer_price(None, None, None)
    async with db.transaction():
        plan = await find_service_plan(plan_id)
        service_type = await find_service_type(plan.service_type_id)
    return plan_price(plan, await _provider_base_price(service_type, plan, requested_config))
