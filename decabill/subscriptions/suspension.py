"""Suspending a customer for non-payment, and lifting it (the mechanics; *when* is decided by dunning,
decabill/dunning).

State, all in this domain's tables:
* `CustomerSuspension` (one row per suspended customer): new orders and starting or restarting a server are
  refused with 400 naming the unpaid invoice (`require_not_suspended`);
* `Subscription.suspended_at` on each of the customer's running subscriptions (`active`, `pending_cancel`;
  their `status` is unchanged) and, when the policy does not bill suspended time, an open `SuspensionPeriod`;
* `SubscriptionItem.stopped_for_suspension_at`: the server was stopped at its provider for the suspension.

`suspend` / `lift` change only the database, in the caller's transaction (so the dunning step or the payment
that causes them commits with them). The provider calls come after the commit and converge on that state:
`stop_owed_servers` stops every server of a suspended subscription not stopped yet, `start_owed_servers`
starts every server stopped for a suspension that has been lifted. Each server is marked right after its
provider call succeeded; one that fails keeps its mark as it was and is reported (the caller audits it) and
tried again on the next run. A crash between the provider call and the mark repeats the call: stopping a
stopped server (or starting a running one) is harmless. Both hold the lease `suspension:<user>` so a stop
and a start of the same customer never interleave.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from decabill import changes, db
from decabill.tenancy import current_tenant
from decabill.webhooks import service as webhooks
from decabill.errors import DecabillError
from decabill.jobs import leases
from decabill.providers import get_registry
from decabill.providers.errors import ServerNotFound
from decabill.subscriptions.errors import AccountSuspended
from decabill.subscriptions.repository import (
    BackorderRepository,
    CustomerSuspensionRepository,
    SubscriptionItemRepository,
    SubscriptionRepository,
    SuspensionPeriodRepository,
)
from models.subscriptions import CustomerSuspension, Subscription, SubscriptionItem, SuspensionPeriod

log = structlog.get_logger("decabill.subscriptions")

LEASE_TTL = dt.timedelta(minutes=10)
LEASE_WAIT_SECONDS = 5.0


def lease_name(user_id: uuid.UUID) -> str:
    return f"suspension:{user_id}"


async def suspension_of(session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False) -> CustomerSuspension | None:
    return await CustomerSuspensionRepository(session).of_user(user_id, for_update=lock)


async def suspensions_of(session: AsyncSession, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, CustomerSuspension]:
    """The suspensions of those of `user_ids` who are suspended, by user id (one statement for a page of them)."""
    return await CustomerSuspensionRepository(session).of_users(user_ids)


async def require_not_suspended(user_id: uuid.UUID) -> None:
    """400 naming the unpaid invoice while the customer is suspended."""
    async with db.transaction() as session:
        found = await suspension_of(session, user_id)
    if found is not None:
        raise AccountSuspended(found.invoice_number)


async def suspend(session: AsyncSession, user_id: uuid.UUID, *, invoice_id: uuid.UUID, invoice_number: str | None,
                  billable: bool, now: dt.datetime) -> list[str] | None:
    """Suspend the customer (in the caller's transaction): the numbers of the subscriptions suspended now, or
    None when the customer was suspended already (nothing changes)."""
    created = await CustomerSuspensionRepository(session).insert_once({
        "id": uuid.uuid4(), "user_id": user_id, "invoice_id": invoice_id, "invoice_number": invoice_number,
        "billable": billable, "suspended_at": now})
    if not created:
        return None
    subscriptions = await SubscriptionRepository(session).running_of_user(user_id, for_update=True)
    for subscription in subscriptions:
        await _mark_suspended(session, subscription, billable=billable, now=now)
    return [s.number for s in subscriptions]


async def _mark_suspended(session: AsyncSession, subscription: Subscription, *, billable: bool,
                          now: dt.datetime) -> None:
    subscription.suspended_at = now
    subscription.touch()
    if not billable:
        await SuspensionPeriodRepository(session).create(SuspensionPeriod(subscription_id=subscription.id,
                                                                          started_at=now))
    await webhooks.subscription_suspended(session, current_tenant(), subscription)  # outbox, same transaction
    changes.server_changed(subscription.user_id, subscription.id, None, "suspended")  # dashboards, after the commit


async def join_suspension(session: AsyncSession, subscription: Subscription, now: dt.datetime) -> bool:
    """A subscription that starts running while its customer is suspended (a backorder whose provisioning was
    under way when the suspension came) is suspended like the others, in the caller's transaction; the
    dunning job's next run stops its server. False when the customer is not suspended."""
    found = await suspension_of(session, subscription.user_id)
    if found is None:
        return False
    await _mark_suspended(session, subscription, billable=found.billable, now=now)
    return True


async def rename_cause(session: AsyncSession, user_id: uuid.UUID, invoice_id: uuid.UUID,
                       invoice_number: str | None) -> None:
    """The invoice named as the suspension's cause was settled, another keeps it in place: name that one."""
    found = await suspension_of(session, user_id, lock=True)
    if found is not None:
        found.invoice_id, found.invoice_number = invoice_id, invoice_number


async def lift(session: AsyncSession, user_id: uuid.UUID, now: dt.datetime) -> list[str] | None:
    """Lift the customer's suspension (in the caller's transaction): the numbers of the subscriptions
    unsuspended, or None when the customer was not suspended (or another caller lifted it first)."""
    if not await CustomerSuspensionRepository(session).lift(user_id):
        return None
    subscriptions = await SubscriptionRepository(session).suspended_of_user(user_id, for_update=True)
    for subscription in subscriptions:
        subscription.suspended_at = None
        subscription.touch()
        await webhooks.subscription_reactivated(session, current_tenant(), subscription)
        changes.server_changed(user_id, subscription.id, None, "reactivated")
    await SuspensionPeriodRepository(session).close_open([s.id for s in subscriptions], now)
    await BackorderRepository(session).make_waiting_of_user_due(user_id, now)  # held back while suspended
    return [s.number for s in subscriptions]


async def unbillable_share(session: AsyncSession, subscription_id: uuid.UUID, start: dt.datetime,
                           end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """The parts of [start, end) during which the subscription was suspended and not to be billed."""
    spans = []
    for period in await SuspensionPeriodRepository(session).overlapping(subscription_id, start, end):
        span = (max(start, period.started_at), min(end, period.ended_at or end))
        if span[1] > span[0]:
            spans.append(span)
    return spans


# --- the servers -----------------------------------------------------------------------------------------


@dataclass
class ServerRun:
    """What one pass over a customer's servers did: server ids (ours, not the provider's) done and failed."""

    done: list[uuid.UUID] = field(default_factory=list)
    failed: dict[uuid.UUID, str] = field(default_factory=dict)  # item id → the provider's error
    busy: bool = False


async def _power_each(user_id: uuid.UUID, action: str) -> ServerRun:
    run = ServerRun()
    async with leases.hold(lease_name(user_id), LEASE_TTL, wait=LEASE_WAIT_SECONDS) as held:
        if not held:
            run.busy = True
            return run
        async with db.transaction() as session:
            items = SubscriptionItemRepository(session)
            owed = await (items.to_stop_of_user(user_id) if action == "stop" else items.to_start_of_user(user_id))
        for item in owed:
            error = await _call(item, action)
            if error is not None:
                run.failed[item.id] = error
                log.warning("subscriptions.suspension_power_failed", action=action, item_id=str(item.id),
                            provider=item.provider, error=error)
                continue
            await _mark(item.id, action)
            run.done.append(item.id)
    return run


async def _call(item: SubscriptionItem, action: str) -> str | None:
    """The provider call; None when it succeeded (or there is nothing to switch: provider or server gone)."""
    provider = get_registry().get(item.provider)
    if provider is None or not item.provider_reference:
        return None
    try:
        await getattr(provider, f"{action}_server")(item.provider_reference)
    except DecabillError as exc:
        if isinstance(exc, ServerNotFound):  # deleted at the provider: nothing left to stop or start
            return None
        return exc.message
    except Exception as exc:  # noqa: BLE001 - any failure of the outside world is retried on the next run
        return f"{type(exc).__name__}: {exc}"
    return None


async def _mark(item_id: uuid.UUID, action: str) -> None:
    async with db.transaction() as session:
        item = await SubscriptionItemRepository(session).get(item_id, for_update=True)
        if item is not None:
            item.stopped_for_suspension_at = db.utcnow() if action == "stop" else None
            item.touch()


async def stop_owed_servers(user_id: uuid.UUID) -> ServerRun:
    """Stop every server of the customer's suspended subscriptions that is not stopped yet."""
    return await _power_each(user_id, "stop")


async def start_owed_servers(user_id: uuid.UUID) -> ServerRun:
    """Start every server that was stopped for a suspension lifted since."""
    return await _power_each(user_id, "start")


async def users_with_servers_to_start() -> list[uuid.UUID]:
    async with db.transaction() as session:
        return await SubscriptionItemRepository(session).users_with_servers_to_start()


async def suspended_users() -> list[uuid.UUID]:
    async with db.transaction() as session:
        return await CustomerSuspensionRepository(session).user_ids()
