"""Provisioning through the provider interface (`decabill.providers`): prepare an order's configuration,
check capacity, create the server of an item, tear it down again.

Provider and DNS calls never run inside a database transaction (an HTTP round trip must not hold
SQLite's write lock or a PostgreSQL connection); each step commits what it learnt before the next call:

    reserve hostname + keys (commit) → create server → store server id, item active (commit)
    → wait for a public IPv4 → A record at Cloudflare → cache the server info (commit)

The IP wait and the DNS record never fail an order: a server without DNS is still a delivered server,
and the failure is logged (names and ids only — never configuration, keys or user data). An A record
Cloudflare refused or failed is owed: the item keeps `dns_pending_since` until the recovery job made it.

Every server carries the label `decabill-item=<item id>` (`ITEM_LABEL`), and everything that may have to
account for a server nobody recorded looks for it by that label:

* a create call that failed may have made the server anyway (its answer lost to a timeout, or a retried
  request refused because the first one took the name): `provision` marks the item `failed`, then deletes
  what carries the item's label (`_clear_failed_create`). The hostname stays reserved on the failed item
  until a search is conclusive — the provider answered the call, and the search itself worked;
  after a call that got no answer (it may still be running at the provider) or a search that failed,
  the recovery job searches again once the grace period has passed (`decabill.subscriptions.recovery`);
* the process died between the create call and storing its answer: the recovery job adopts the server
  (`adopt`), or a backorder's next retry does (`resume`);
* winding an item down (`wind_down`, expiry) deletes the labelled servers besides the recorded one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import changes, db, secrets
from decabill.catalog.service import check_availability, find_service_plan, find_service_type, preview_price
from decabill.config import get_settings
from decabill.errors import DecabillError
from decabill.identity.principal import Principal
from decabill.providers import (
    AvailabilityResult,
    CreateServerRequest,
    ProviderNotConfigured,
    ProviderRequestFailed,
    ProvisioningProvider,
    ServerInfo,
    get_registry,
)
from decabill.subscriptions import dns, hostnames
from decabill.subscriptions.cloud_init import UserDataInput, build_user_data
from decabill.subscriptions.configuration import EffectiveConfig, effective_config, sanitize_request
from decabill.subscriptions.keys import generate_ed25519
from decabill.subscriptions.repository import SubscriptionItemRepository
from decabill.tenancy import current_tenant
from models.catalog import ServicePlan, ServiceType
from models.subscriptions import ProvisioningStatus, SubscriptionItem

log = structlog.get_logger("decabill.subscriptions")


def system_principal() -> Principal:
    """Who background jobs act as when they call another area's service."""
    return Principal(tenant=current_tenant(), role="admin", method="system")


@dataclass(frozen=True)
class OrderContext:
    plan: ServicePlan
    service_type: ServiceType
    provider: ProvisioningProvider | None  # None: a product without servers (D24)
    requested: dict[str, Any]  # the customer's request, geography dropped unless the plan allows it
    config: EffectiveConfig


async def prepare(plan_id: uuid.UUID, requested: dict[str, Any] | None) -> OrderContext:
    """Load plan and service type (404s) and build and check the effective configuration (400)."""
    async with db.transaction():
        plan = await find_service_plan(plan_id)
        service_type = await find_service_type(plan.service_type_id)
    provider = get_registry().get(service_type.provider)
    request = sanitize_request(requested, allow_location=plan.allow_customer_location_selection)
    config = effective_config(plan.provider_config_defaults, request, provider_id=service_type.provider,
                              provider=provider, type_schema=service_type.config_schema)
    return OrderContext(plan, service_type, provider, request, config)


async def check_capacity(ctx: OrderContext) -> AvailabilityResult:
    """The catalog's availability check (D18, with its audit snapshot) for the order's region and size."""
    if ctx.provider is None:
        return AvailabilityResult(True)
    return await check_availability(system_principal(), ctx.service_type.id, ctx.config.region or "",
                                                 ctx.config.server_type or "")


async def check_capacity_or_reason(ctx: OrderContext) -> AvailabilityResult:
    """Like `check_capacity`, but a provider that cannot be asked (no token, API down) counts as "not
    available now" with its message as the reason — for backorders, which simply try again later."""
    try:
        return await check_capacity(ctx)
    except (ProviderNotConfigured, ProviderRequestFailed) as exc:
        return AvailabilityResult(False, exc.message)


async def period_price(ctx: OrderContext) -> Decimal:
    """The customer price of one full period, as the price preview computes it for this configuration."""
    return (await preview_price(system_principal(), ctx.plan.id, ctx.config.values)).total_price


@dataclass(frozen=True)
class Provisioned:
    server_id: str
    hostname: str
    public_ip: str
    dns_record: bool


#: the label (Hetzner) / tag `decabill-item:<id>` (DigitalOcean) that marks the server of an item: how the
#: recovery of an interrupted order (`decabill.subscriptions.recovery`) finds a server it never recorded
ITEM_LABEL = "decabill-item"


def _labels(number: str, item_id: uuid.UUID) -> dict[str, str]:
    return {"managed-by": "decabill", "decabill-subscription": number.lower(), ITEM_LABEL: str(item_id)}


async def _load_item(session: AsyncSession, item_id: uuid.UUID) -> SubscriptionItem:
    """The item, row-locked for a change."""
    item = await SubscriptionItemRepository(session).get(item_id, for_update=True)
    assert item is not None
    return item


async def provision(item_id: uuid.UUID, ctx: OrderContext, number: str) -> Provisioned:
    """Create the server of a pending item. On failure the item is left `failed`, servers the call may have
    made anyway are deleted, the hostname is released once that is certain (`_clear_failed_create`), and the
    provider's error is raised; the caller decides what it means for the order."""
    assert ctx.provider is not None
    settings = get_settings()
    client_key, host_key = generate_ed25519(), generate_ed25519()
    async with db.transaction() as session:
        item = await _load_item(session, item_id)
        hostname = await hostnames.reserve(session, item)
        item.provider, item.service = ctx.provider.id, ctx.config.service
        item.region, item.server_type = ctx.config.region, ctx.config.server_type
        item.config_snapshot = secrets.encrypt_json(ctx.config.values)
        item.ssh_private_key = secrets.encrypt(client_key.private_openssh)
        item.ssh_public_key = client_key.public_openssh
        item.ssh_host_public_key = host_key.public_openssh
        item.provisioning_status = ProvisioningStatus.PENDING
        item.touch()
    user_data = build_user_data(UserDataInput(
        service=ctx.config.service, config={**ctx.config.values, "sshPublicKey": client_key.public_openssh},
        hostname=hostname, base_domain=settings.dns_base_domain, authorized_key=client_key.public_openssh,
        host_private_key=host_key.private_openssh, host_public_key=host_key.public_openssh,
        lets_encrypt_email=settings.lets_encrypt_email,
    ))
    request = CreateServerRequest(name=hostname, server_type=ctx.config.server_type or "", region=ctx.config.region or "",
                                  user_data=user_data, firewall_id=ctx.config.firewall_id, labels=_labels(number, item_id))
    try:
        server = await ctx.provider.create_server(request)
    except Exception as exc:
        log.warning("subscriptions.provision_failed", item_id=str(item_id), provider=ctx.provider.id,
                    error=exc.message if isinstance(exc, DecabillError) else type(exc).__name__)
        async with db.transaction() as session:  # failed first: a crash during the search cannot make it pending
            await mark_failed(session, await _load_item(session, item_id), release_hostname=False)
        if await _clear_failed_create(ctx.provider, item_id, exc):
            async with db.transaction() as session:
                await hostnames.release(session, await _load_item(session, item_id))
        raise
    async with db.transaction() as session:
        record_server(await _load_item(session, item_id), server.server_id)
    log.info("subscriptions.server_created", item_id=str(item_id), provider=ctx.provider.id, hostname=hostname)
    return await publish(ctx.provider, item_id, server.server_id, hostname, server.public_ip)


async def _clear_failed_create(provider: ProvisioningProvider, item_id: uuid.UUID, exc: Exception) -> bool:
    """After a failed create call, delete the servers it may have made anyway (best effort). True when no
    server can turn up any more — the provider answered the call with an error and the search worked (or
    the provider cannot search, so nobody ever could) — and the hostname may be released; False leaves
    the search to the recovery job (see the module docstring)."""
    if isinstance(exc, ProviderNotConfigured):
        return True  # refused before any request was sent
    try:
        searched = await delete_labelled(provider, item_id)
    except Exception as error:  # never hide the create call's own error
        log.error("subscriptions.stray_search_failed", item_id=str(item_id), provider=provider.id,
                  error=error.message if isinstance(error, DecabillError) else type(error).__name__)
        return False
    answered = isinstance(exc, ProviderRequestFailed) and exc.code is not None
    return answered or not searched


async def mark_failed(session: AsyncSession, item: SubscriptionItem, *, release_hostname: bool = True) -> None:
    """The item (locked by the caller) got no server: it is `failed`, its hostname released unless a server
    carrying it may still exist (`release_hostname=False`: the recovery job releases it after its search)."""
    if release_hostname:
        await hostnames.release(session, item)
    item.provisioning_status = ProvisioningStatus.FAILED
    item.touch()


async def delete_labelled(provider: ProvisioningProvider, item_id: uuid.UUID, *, keep: str | None = None) -> bool:
    """Delete the servers labelled with the item's id (except the server `keep`); False when the provider
    cannot search by label. Provider errors are raised: the caller keeps what tells it to search again."""
    servers = await provider.find_servers(ITEM_LABEL, str(item_id))
    if servers is None:
        return False
    for server in servers:
        if server.server_id != keep:
            await provider.delete_server(server.server_id)
            log.warning("subscriptions.stray_server_deleted", item_id=str(item_id), provider=provider.id)
    return True


async def adopt(provider: ProvisioningProvider, item_id: uuid.UUID, hostname: str | None, servers: list[ServerInfo],
                claim: Callable[[AsyncSession], Awaitable[SubscriptionItem | None]]) -> bool:
    """Make the first of `servers` (found by the item's label) the item's server: `claim()` returns the
    item locked — or None when someone else has it, then nothing happens (False) — and it becomes
    `active`; surplus servers with the label are deleted (only one was ever wanted), then the steps after
    the create call run (`publish`)."""
    server, *surplus = servers
    async with db.transaction() as session:
        item = await claim(session)
        if item is None:
            return False
        record_server(item, server.server_id)
    log.info("subscriptions.server_adopted", item_id=str(item_id), provider=provider.id, hostname=hostname)
    for extra in surplus:  # a create request that was retried after a lost answer
        try:
            await provider.delete_server(extra.server_id)
            log.warning("subscriptions.stray_server_deleted", item_id=str(item_id), provider=provider.id)
        except DecabillError as exc:
            log.error("subscriptions.deprovision_failed", item_id=str(item_id), provider=provider.id,
                      error=exc.message)
    await publish(provider, item_id, server.server_id, hostname, server.public_ip or None)
    return True


async def resume(item_id: uuid.UUID) -> bool:
    """Before a backorder's retry creates the item's server: an earlier attempt may have got that far and
    then died (crash, deploy) or failed without being able to delete what it made. True when the item has
    its server now — recorded already (the steps after the create call are finished if they did not run),
    or found by its label and adopted: an attempt that died leaves the item `pending` with the hostname
    and keys the server was made with. False when a server is to be created: nothing found, or only
    what a failed attempt left (its keys are gone), which is deleted first. Provider errors are raised:
    no second server is created while nobody can tell whether the first exists."""
    async with db.transaction() as session:
        item = await _load_item(session, item_id)
    provider = get_registry().get(item.provider)
    if provider is None or not item.hostname:
        return False  # no attempt got as far as the provider (the hostname is reserved right before)
    if item.provider_reference:
        if not item.server_info_snapshot:
            await publish(provider, item_id, item.provider_reference, item.hostname, None)
        return True
    servers = await provider.find_servers(ITEM_LABEL, str(item_id))
    if servers and item.ssh_private_key:
        return await adopt(provider, item_id, item.hostname, servers, lambda session: _load_item(session, item_id))
    if servers:
        await delete_labelled(provider, item_id)
    return False


def record_server(item: SubscriptionItem, server_id: str) -> None:
    """The item (locked by the caller) has its server: `active` from now on."""
    item.provider_reference = server_id
    item.provisioning_status = ProvisioningStatus.ACTIVE
    item.touch()
    changes.server_changed(None, item.subscription_id, item.id, "provisioned")  # dashboards show it at once


async def publish(provider: ProvisioningProvider, item_id: uuid.UUID, server_id: str, hostname: str | None,
                  known_ip: str | None) -> Provisioned:
    """The steps after the server is recorded: wait for its public IPv4, create the A record of the hostname,
    cache the server info. Never raises for the IP or DNS (logged). When Cloudflare refuses or fails the A
    record, the item keeps `dns_pending_since` — the record is owed, the recovery job creates it later —
    which is cleared once it is made (or DNS is not configured any more)."""
    info = await _wait_for_public_ip(provider, server_id, known_ip)
    dns_record = dns_failed = False
    if info is not None and info.public_ip and hostname:
        try:
            dns_record = await dns.create_a_record(hostname, info.public_ip)
        except dns.DnsError as exc:
            dns_failed = True
            log.warning("subscriptions.dns_create_failed", item_id=str(item_id), hostname=hostname, error=str(exc))
    if info is not None:
        async with db.transaction() as session:
            item = await _load_item(session, item_id)
            item.server_info_snapshot = info_snapshot(info)
            if dns_failed:
                item.dns_pending_since = item.dns_pending_since or db.utcnow()
            elif dns_record or not hostname or not dns.is_configured():
                item.dns_pending_since = None  # made, or nothing to make (no IPv4 yet: still owed)
    return Provisioned(server_id, hostname or "", info.public_ip if info else "", dns_record)


async def _wait_for_public_ip(provider: ProvisioningProvider, server_id: str, known_ip: str | None) -> ServerInfo | None:
    """Read the server until it has a public IPv4 (DigitalOcean assigns it only once the droplet is
    active): every PROVISIONING_IP_POLL_INTERVAL_MS, at most PROVISIONING_IP_POLL_ATTEMPTS reads."""
    settings = get_settings()
    info: ServerInfo | None = None
    for attempt in range(settings.provisioning_ip_poll_attempts):
        try:
            info = await provider.server_info(server_id)
        except DecabillError as exc:
            log.warning("subscriptions.server_info_failed", provider=provider.id, error=exc.message)
            return info
        if info.public_ip:
            return info
        if attempt + 1 < settings.provisioning_ip_poll_attempts:
            await asyncio.sleep(settings.provisioning_ip_poll_interval_ms / 1000)
    if info is not None and known_ip and not info.public_ip:
        info = ServerInfo(info.server_id, info.name, known_ip, info.private_ip, info.status, info.metadata)
    log.warning("subscriptions.no_public_ip", provider=provider.id,
                attempts=settings.provisioning_ip_poll_attempts)
    return info


def info_snapshot(info: ServerInfo) -> dict[str, Any]:
    return {"serverId": info.server_id, "name": info.name, "publicIp": info.public_ip, "privateIp": info.private_ip,
            "status": info.status, "metadata": dict(info.metadata)}


@dataclass(frozen=True)
class WindDown:
    item_id: uuid.UUID
    dns_done: bool  # no hostname, DNS not configured, or its records are gone
    server_done: bool  # no server, or the provider deleted it and every other server labelled with the item


async def wind_down(item_id: uuid.UUID, provider_id: str, server_id: str | None, hostname: str | None) -> WindDown:
    """Delete the item's A records, its server and any other server labelled with its id (one created but
    never recorded: an order interrupted mid-create, a create call that failed). Failures are logged and
    reported, not raised, so the caller can keep what is left for the next run."""
    dns_done = server_done = True
    if hostname:
        try:
            await dns.delete_a_records(hostname)
        except dns.DnsError as exc:
            dns_done = False
            log.error("subscriptions.dns_delete_failed", item_id=str(item_id), hostname=hostname, error=str(exc))
    provider = get_registry().get(provider_id)
    if provider is not None:
        try:
            if server_id:
                await provider.delete_server(server_id)
                log.info("subscriptions.server_deleted", item_id=str(item_id), provider=provider_id)
            await delete_labelled(provider, item_id, keep=server_id)
        except DecabillError as exc:
            server_done = False
            log.error("subscriptions.deprovision_failed", item_id=str(item_id), provider=provider_id,
                      error=exc.message)
    return WindDown(item_id, dns_done, server_done)
