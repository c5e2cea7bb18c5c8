"""The provisioning provider interface: one small abstract class that the catalog (server types,
availability, price lookups) and the subscriptions (create, delete, info, power actions) call.

A provider is an object with an `id` (the value of a service type's `provider`), a `display_name`,
an optional `config_schema()` and async methods. Built-ins live in `hetzner.py` and
`digitalocean.py`; plugins are found through the `decabill.provisioning_providers` entry point group
(see `decabill.providers.plugins`). Every method raises the errors of `decabill.providers.errors`:
`ProviderNotConfigured` (no token), `ProviderRequestFailed` (the API said no, 400
`Failed to <action>: ...`), its subclass `ProviderCapacityError` (no capacity right now) and
`ServerNotFound`.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from decabill.observability.calls import instrument_methods
from decabill.providers.errors import (
    ProviderCapacityError,
    ProviderNotConfigured,
    ProviderRequestFailed,
    ServerNotFound,
)

# --- values exchanged with providers ------------------------------------------------------------------


@dataclass(frozen=True)
class RegionPrice:
    monthly: Decimal | None
    hourly: Decimal | None


@dataclass(frozen=True)
class ServerType:
    """A machine size. Serialised through the spec's `ServerType` schema (id, name, cores, memory,
    disk, priceMonthly, priceHourly, description); the other fields serve availability and pricing."""

    id: str
    name: str
    cores: float | None
    memory: float | None  # GB
    disk: float | None  # GB
    # List prices as the provider publishes them, unconverted (Hetzner: gross EUR of its reference
    # location fsn1; DigitalOcean: USD, the same everywhere).
    price_monthly: Decimal | None
    price_hourly: Decimal | None
    description: str
    regions: tuple[str, ...] = ()  # where the size is sold
    available_regions: tuple[str, ...] = ()  # where it can be ordered right now
    deprecated: bool = False
    region_prices: Mapping[str, RegionPrice] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def orderable(self) -> bool:
        return not self.deprecated and bool(self.available_regions)

    def price_in(self, region: str | None) -> RegionPrice:
        """The price in `region` when the provider prices per region, else the reference price."""
        if region and region in self.region_prices:
            return self.region_prices[region]
        return RegionPrice(self.price_monthly, self.price_hourly)


@dataclass(frozen=True)
class AvailabilityResult:
    """Serialised through the spec's `AvailabilityResponse` (isAvailable, reason, alternatives)."""

    is_available: bool
    reason: str | None = None
    # {"availableTypes": [...], "availableRegions": [...]} when unavailable
    alternatives: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # for the audit snapshot


@dataclass(frozen=True)
class CreateServerRequest:
    name: str
    server_type: str
    region: str
    user_data: str | None = None  # cloud-init text (`#!/bin/bash ...` or `#cloud-config ...`), sent as is
    image: str | None = None  # provider default when None
    firewall_id: int | None = None  # Hetzner only
    labels: Mapping[str, str] = field(default_factory=dict)  # Hetzner labels / DigitalOcean tags (`k:v`)


@dataclass(frozen=True)
class ProvisionedServer:
    server_id: str  # the provider's id, as a string
    name: str
    status: str
    public_ip: str | None = None  # often unknown right after creation
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class ServerInfo:
    server_id: str
    name: str
    public_ip: str  # "" when the server has none (yet)
    private_ip: str | None
    status: str  # the provider's own status word (Hetzner `running`/`off`/..., DigitalOcean `active`/`off`/...)
    metadata: dict[str, Any] = field(default_factory=dict)


# --- availability rules (behavior.md §4.7, extended to every provider by D18) ------------------------

SERVER_TYPE_NOT_FOUND = "Server type not found"
SERVER_TYPE_DEPRECATED = "Server type deprecated"
NOT_IN_REGION = "Server type not available in region"
NO_CAPACITY = "Server type temporarily out of capacity in region"
ACCOUNT_LIMIT = "Provider account limit reached"


def evaluate_availability(
    types: list[ServerType], region: str, server_type: str, *, limit_reached: bool = False, raw: dict | None = None
) -> AvailabilityResult:
    """The reference's checks in its order — exists, not deprecated, sold in the region, account limit —
    plus live capacity where the provider reports it. Every negative answer carries alternatives:
    the other sizes orderable in the region and the other regions where the size is orderable."""
    wanted = next((t for t in types if t.id == server_type), None)
    if wanted is None:
        reason = SERVER_TYPE_NOT_FOUND
    elif wanted.deprecated:
        reason = SERVER_TYPE_DEPRECATED
    elif region not in wanted.regions:
        reason = NOT_IN_REGION
    elif region not in wanted.available_regions:
        reason = NO_CAPACITY
    elif limit_reached:
        reason = ACCOUNT_LIMIT
    else:
        return AvailabilityResult(True, raw=raw or {})
    alternatives = {
        "availableTypes": [t.id for t in types
                           if t.id != server_type and not t.deprecated and region in t.available_regions],
        "availableRegions": [] if wanted is None or wanted.deprecated
        else [r for r in wanted.available_regions if r != region],
    }
    return AvailabilityResult(False, reason, alternatives, raw=raw or {})


# --- the interface -----------------------------------------------------------------------------------


#: the methods that call a provider's API: counted, timed and traced per provider (decabill/observability/calls.py)
API_METHODS = ("fetch_server_types", "account_limit_reached", "create_server", "delete_server", "server_info",
               "find_servers", "start_server", "stop_server", "restart_server")


def call_outcome(error: BaseException) -> str:
    """The `outcome` label of a provider call that raised `error`."""
    if isinstance(error, ServerNotFound):
        return "not_found"
    if isinstance(error, ProviderNotConfigured):
        return "not_configured"
    if isinstance(error, ProviderCapacityError):
        return "capacity"
    if isinstance(error, ProviderRequestFailed):
        return "rejected"
    return "error"


class ProvisioningProvider(ABC):
    """Subclass this in a plugin and name the class in the `decabill.provisioning_providers` entry point
    group. The class is constructed without arguments (read your own settings from the environment)."""

    id: ClassVar[str]
    display_name: ClassVar[str]
    #: how long `server_types()` answers from memory (availability checks always ask the provider)
    cache_seconds: float = 60.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        instrument_methods(cls, "provider", API_METHODS, call_outcome)  # plugins included

    def config_schema(self) -> dict[str, Any] | None:
        """What a subscription's configuration may contain (`properties`, `required`, `basePriceFromField`)."""
        return None

    # -- catalogue --
    @abstractmethod
    async def fetch_server_types(self) -> list[ServerType]:
        """Every size the provider knows, deprecated and sold-out ones included (uncached)."""

    async def server_types(self, *, fresh: bool = False) -> list[ServerType]:
        """`fetch_server_types()` behind a short per-provider cache (`PROVIDER_CACHE_SECONDS`)."""
        cache: tuple[float, list[ServerType]] | None = getattr(self, "_server_types_cache", None)
        if not fresh and cache is not None and time.monotonic() - cache[0] < self.cache_seconds:
            return cache[1]
        types = await self.fetch_server_types()
        self._server_types_cache = (time.monotonic(), types)
        return types

    async def account_limit_reached(self) -> tuple[bool, Any]:
        """(limit reached?, raw limits payload or None). Providers without an account limit API keep the default."""
        return False, None

    async def check_availability(self, region: str, server_type: str) -> AvailabilityResult:
        """Always asks the provider (capacity changes by the minute) and refreshes the cache on the way."""
        # Both calls run side by side, and both finish before we answer (no request left in flight).
        outcomes = await asyncio.gather(self.server_types(fresh=True), self.account_limit_reached(),
                                        return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, ProviderRequestFailed):
                raise outcome.for_action("check availability") from outcome
            if isinstance(outcome, BaseException):
                raise outcome
        types, (limit_reached, limits) = outcomes
        wanted = next((t for t in types if t.id == server_type), None)
        raw = {"serverType": dict(wanted.raw) if wanted else None, "limits": limits}
        return evaluate_availability(types, region, server_type, limit_reached=limit_reached, raw=raw)

    # -- servers (used by subscriptions) --
    @abstractmethod
    async def create_server(self, request: CreateServerRequest) -> ProvisionedServer:
        """Create and start a server; `ProviderCapacityError` when the provider has no room for it."""

    @abstractmethod
    async def delete_server(self, server_id: str) -> None:
        """Delete a server; a server that is already gone counts as deleted."""

    @abstractmethod
    async def server_info(self, server_id: str) -> ServerInfo:
        """Live state; `ServerNotFound` when the provider does not know the id."""

    async def find_servers(self, label: str, value: str) -> list[ServerInfo] | None:
        """The servers carrying the label `label` with `value` (one of `CreateServerRequest.labels`), oldest
        first; how an order interrupted by a crash finds the server it may have created. None: this provider
        cannot search (the default for plugins), so nobody can tell whether such a server exists."""
        return None

    @abstractmethod
    async def start_server(self, server_id: str) -> None: ...

    @abstractmethod
    async def stop_server(self, server_id: str) -> None: ...

    @abstractmethod
    async def restart_server(self, server_id: str) -> None: ...
