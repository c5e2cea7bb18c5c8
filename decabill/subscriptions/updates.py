"""Keeping provisioned stacks current (behavior.md part A §7.5, update job).

Every SUBSCRIPTION_UPDATE_SCHEDULER_INTERVAL (24 h) each active item of an active (or pending_cancel)
subscription with a server and a stored SSH key gets, over SSH as root:

    cd /opt/agent-controller && docker compose up -d --pull=always       (or /opt/agent-manager)

The connection uses the item's own client key (decrypted only in memory) and accepts only the host key
pinned at provisioning (cloud-init installed it), so the job never talks to an impostor and never
trusts on first use. Address: the provider's current public IPv4 of the server (the cached server
info when the provider cannot be asked); port SUBSCRIPTION_UPDATE_SSH_PORT (22).
"""

from __future__ import annotations

import datetime as dt
import shlex
import uuid
from dataclasses import dataclass

import asyncssh
import structlog

from decabill import db, secrets
from decabill.config import get_settings
from decabill.errors import DecabillError
from decabill.jobs import leases
from decabill.providers import get_registry
from decabill.subscriptions.cloud_init import STACK_DIRS
from decabill.subscriptions.repository import SubscriptionItemRepository
from models.subscriptions import SubscriptionItem

log = structlog.get_logger("decabill.subscriptions")

LEASE_TTL = dt.timedelta(minutes=15)
COMMAND_TIMEOUT_SECONDS = 600


class UpdateFailed(Exception):
    pass


def update_command(service: str) -> str:
    return f"cd {shlex.quote(STACK_DIRS.get(service, STACK_DIRS['controller']))} && docker compose up -d --pull=always"


async def items_to_update(limit: int = 0) -> list[uuid.UUID]:
    """Every updatable item of the bound tenant (`limit` 0: all, as the reference)."""
    async with db.transaction() as session:
        return await SubscriptionItemRepository(session).updatable_ids(limit)


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    client_key: str
    host_key: str | None
    command: str


async def run_remote(target: Target) -> str:
    """Run the command; its (trimmed) output, or `UpdateFailed` with the exit status."""
    settings = get_settings()
    known_hosts = ([asyncssh.import_public_key(target.host_key)], [], []) if target.host_key else None
    try:
        async with asyncssh.connect(
            target.host, port=target.port, username="root", client_keys=[asyncssh.import_private_key(target.client_key)],
            known_hosts=known_hosts, connect_timeout=settings.subscription_update_ssh_timeout_ms / 1000,
            agent_path=None, config=None,
        ) as connection:
            result = await connection.run(target.command, check=False, timeout=COMMAND_TIMEOUT_SECONDS)
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise UpdateFailed(f"SSH to {target.host}:{target.port} failed: {type(exc).__name__}: {exc}") from exc
    if result.exit_status != 0:
        raise UpdateFailed(f"`{target.command}` exited with status {result.exit_status}")
    return str(result.stdout or "").strip()


async def update_item(item_id: uuid.UUID) -> str:
    """The update job's unit: `updated`, `skipped` (not updatable any more, or no address) or `busy`."""
    async with leases.hold(f"item-update:{item_id}", LEASE_TTL) as held:
        if not held:
            return "busy"
        async with db.transaction() as session:
            item = await SubscriptionItemRepository(session).get_updatable(item_id)
        if item is None:
            return "skipped"
        host = await _public_ip(item)
        if not host:
            log.warning("subscriptions.update_no_address", item_id=str(item_id))
            return "skipped"
        target = Target(host=host, port=get_settings().subscription_update_ssh_port,
                        client_key=secrets.decrypt(item.ssh_private_key) or "", host_key=item.ssh_host_public_key,
                        command=update_command(item.service))
        await run_remote(target)
    log.info("subscriptions.item_updated", item_id=str(item_id), service=item.service)
    return "updated"


async def _public_ip(item: SubscriptionItem) -> str:
    provider = get_registry().get(item.provider)
    if provider is not None:
        try:
            return (await provider.server_info(item.provider_reference or "")).public_ip
        except DecabillError as exc:
            log.warning("subscriptions.server_info_failed", item_id=str(item.id), error=exc.message)
    return str((item.server_info_snapshot or {}).get("publicIp") or "")
