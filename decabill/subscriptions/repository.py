"""Queries on the subscriptions domain's tables: subscriptions, their items, reserved hostnames,
backorders and open positions."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, and_, bindparam, exists, or_
from sqlalchemy.sql import ColumnElement, Select

from decabill.repository import (
    BillableRepository,
    JsonField,
    Repository,
    page,
    paged,
    paging,
    prepared,
    row_columns,
)
from models.subscriptions import (
    Backorder,
    BackorderStatus,
    CustomerSuspension,
    OpenPosition,
    ProvisioningStatus,
    ReservedHostname,
    Subscription,
    SubscriptionItem,
    SubscriptionStatus,
    SuspensionPeriod,
)

#: the statuses in which a subscription is billed (and runs its servers)
BILLED_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING_CANCEL)


class SubscriptionRepository(Repository[Subscription]):
    model = Subscription

    @staticmethod
    def _owned(user_id: Any, subscription_id: Any) -> tuple[ColumnElement[bool], ...]:
        return Subscription.id == subscription_id, Subscription.user_id == user_id

    async def get_own(self, user_id: uuid.UUID, subscription_id: uuid.UUID, *,
                      for_update: bool = False) -> Subscription | None:
        return await self.get_by(*self._owned(user_id, subscription_id), for_update=for_update)

    @classmethod
    def own(cls, *columns: Any, subscription_id: Any, user_id: Any) -> Select[Any]:
        """`get_own` as the start of a statement built once (`scoped`): the given columns of the user's
        subscription; the ids are usually bound parameters."""
        return cls.scoped(*columns).select_from(Subscription).where(*cls._owned(user_id, subscription_id))

    async def any_of_user(self, user_id: uuid.UUID) -> bool:
        return await self.exists(Subscription.user_id == user_id)

    #: what a list of subscriptions shows of each (SubscriptionResponse): the other columns (tenant, price,
    #: currency, activation and end) are not read, converted or sent for a list
    LISTED = ("id", "number", "plan_id", "user_id", "status", "current_period_start", "current_period_end",
              "next_billing_at", "cancel_requested_at", "cancel_effective_at", "resumed_at", "created_at", "updated_at",
              "suspended_at")

    @prepared
    def _of_user(cls) -> Select[Any]:
        listed = [Subscription.__table__.c[name] for name in cls.LISTED]
        return paged(cls.scoped(*listed).where(Subscription.user_id == bindparam("user_id"))
                     .order_by(Subscription.created_at.desc(), Subscription.id))

    async def of_user_json(self, user_id: uuid.UUID, limit: int | None, offset: int | None,
                           shape: Sequence[JsonField]) -> str:
        """`of_user` with the items as JSON text PostgreSQL writes (objects of `shape`, the contract's
        SubscriptionResponse: the listed columns themselves)."""
        row = await self.run_json(self._of_user, shape, row_columns, user_id=user_id, **paging(limit, offset))
        return row.items

    async def of_user(self, user_id: uuid.UUID, limit: int | None, offset: int | None) -> list[Any]:
        """One page of the user's subscriptions as records (read-only), newest first."""
        return list(await self.run(self._of_user, user_id=user_id, **paging(limit, offset)))

    async def number_of(self, subscription_id: uuid.UUID) -> str | None:
        return await self.one_or_none(self.statement(Subscription.number).where(Subscription.id == subscription_id))

    # --- the billing job -----------------------------------------------------------------------------------

    def _billing_due(self, now: dt.datetime) -> tuple[ColumnElement[bool], ...]:
        return Subscription.status.in_(BILLED_STATUSES), Subscription.next_billing_at <= now

    async def due_for_billing(self, now: dt.datetime, limit: int) -> list[uuid.UUID]:
        statement = (self.statement(Subscription.id).where(*self._billing_due(now))
                     .order_by(Subscription.next_billing_at, Subscription.id).limit(limit))
        return await self.all(statement)

    async def claim_due_for_billing(self, subscription_id: uuid.UUID, now: dt.datetime) -> Subscription | None:
        """Locked if still due; None when it is not, or another worker holds it (skip locked)."""
        return await self.get_by(Subscription.id == subscription_id, *self._billing_due(now),
                                 for_update=True, skip_locked=True)

    # --- the expiration job --------------------------------------------------------------------------------

    @staticmethod
    def _expiration_due(now: dt.datetime) -> ColumnElement[bool]:
        """Cancellations that took effect, and ended subscriptions that still have a server or hostname."""
        hostname_left = and_(SubscriptionItem.hostname.is_not(None),
                             SubscriptionItem.provisioning_status != ProvisioningStatus.FAILED)
        leftovers = exists().where(SubscriptionItem.subscription_id == Subscription.id,
                                   or_(SubscriptionItem.provider_reference.is_not(None), hostname_left))
        return or_(
            (Subscription.status == SubscriptionStatus.PENDING_CANCEL) & (Subscription.cancel_effective_at <= now),
            (Subscription.status == SubscriptionStatus.CANCELED) & leftovers,
        )

    async def due_for_expiration(self, now: dt.datetime, limit: int) -> list[uuid.UUID]:
        statement = (self.statement(Subscription.id).where(self._expiration_due(now))
                     # endings first; cleanups that keep failing must not crowd them out of the batch
                     .order_by(Subscription.status == SubscriptionStatus.CANCELED, Subscription.cancel_effective_at,
                               Subscription.id)
                     .limit(limit))
        return await self.all(statement)

    async def get_due_for_expiration(self, subscription_id: uuid.UUID, now: dt.datetime, *,
                                     claim: bool = False) -> Subscription | None:
        """The subscription if it is due; `claim`: locked, None while another worker holds it."""
        return await self.get_by(Subscription.id == subscription_id, self._expiration_due(now),
                                 for_update=claim, skip_locked=claim)

    # --- renewal reminders --------------------------------------------------------------------------------------

    @staticmethod
    def _renewing(start: dt.datetime, end: dt.datetime) -> tuple[ColumnElement[bool], ...]:
        return (Subscription.status == SubscriptionStatus.ACTIVE, Subscription.next_billing_at > start,
                Subscription.next_billing_at <= end)

    async def renewing_ids(self, start: dt.datetime, end: dt.datetime, limit: int, *conditions: Any) -> list[uuid.UUID]:
        """Active subscriptions whose next renewal is in (start, end], soonest first."""
        statement = (self.statement(Subscription.id).where(*self._renewing(start, end), *conditions)
                     .order_by(Subscription.next_billing_at, Subscription.id))
        return await self.all(page(statement, limit, 0))

    async def get_renewing(self, subscription_id: uuid.UUID, start: dt.datetime, end: dt.datetime) -> Subscription | None:
        return await self.get_by(Subscription.id == subscription_id, *self._renewing(start, end))

    async def active_ids_of_user(self, user_id: uuid.UUID, limit: int) -> list[uuid.UUID]:
        """The user's active subscriptions, newest first."""
        statement = (self.statement(Subscription.id)
                     .where(Subscription.user_id == user_id, Subscription.status == SubscriptionStatus.ACTIVE)
                     .order_by(Subscription.created_at.desc(), Subscription.id).limit(limit))
        return await self.all(statement)

    async def active_servers_of_users(self, user_ids: list[uuid.UUID]) -> list[tuple[uuid.UUID, uuid.UUID, Any, Any]]:
        """(user id, subscription id, its suspension time, its active items or None) of the users' active subscriptions, per user
        newest subscription first and each subscription's items oldest first: one statement for many
        dashboards (the caller keeps the first item of each subscription and its per-user limit)."""
        if not user_ids:
            return []
        statement = (self.statement(Subscription.user_id, Subscription.id, Subscription.suspended_at, SubscriptionItem)
                     .outerjoin(SubscriptionItem, and_(
                         SubscriptionItem.subscription_id == Subscription.id,
                         SubscriptionItem.provisioning_status == ProvisioningStatus.ACTIVE))
                     .where(Subscription.user_id.in_(user_ids), Subscription.status == SubscriptionStatus.ACTIVE)
                     .order_by(Subscription.user_id, Subscription.created_at.desc(), Subscription.id,
                               SubscriptionItem.created_at, SubscriptionItem.id))
        return [(row[0], row[1], row[2], row[3]) for row in await self.rows(statement)]

    async def count_active(self) -> int:
        return await self.count(Subscription.status == SubscriptionStatus.ACTIVE)

    async def by_ids(self, ids: set[uuid.UUID]) -> dict[uuid.UUID, Subscription]:
        if not ids:
            return {}
        return {s.id: s for s in await self.all(self.statement().where(Subscription.id.in_(ids)))}

    # --- suspension for non-payment ------------------------------------------------------------------------

    async def running_of_user(self, user_id: uuid.UUID, *, for_update: bool = False) -> list[Subscription]:
        """The user's subscriptions that run servers and are billed (active, pending_cancel), oldest first: the
        order of the numbers in the suspension's audit entry, of the ids in the termination's, and of their webhook
        events (ix_subscriptions_tenant_user serves it)."""
        statement = (self.statement().where(Subscription.user_id == user_id, Subscription.status.in_(BILLED_STATUSES))
                     .order_by(Subscription.created_at, Subscription.id))
        return await self.all(self.for_update(statement) if for_update else statement)

    async def suspended_of_user(self, user_id: uuid.UUID, *, for_update: bool = False) -> list[Subscription]:
        """The user's suspended subscriptions, oldest first (as `running_of_user`)."""
        statement = (self.statement().where(Subscription.user_id == user_id, Subscription.suspended_at.is_not(None))
                     .order_by(Subscription.created_at, Subscription.id))
        return await self.all(self.for_update(statement) if for_update else statement)


class SubscriptionItemRepository(Repository[SubscriptionItem]):
    model = SubscriptionItem

    async def of_subscription(self, subscription_id: uuid.UUID, *, for_update: bool = False) -> list[SubscriptionItem]:
        statement = (self.statement().where(SubscriptionItem.subscription_id == subscription_id)
                     .order_by(SubscriptionItem.created_at, SubscriptionItem.id))
        return await self.all(self.for_update(statement) if for_update else statement)

    async def first_active_of(self, subscription_ids: list[uuid.UUID]) -> dict[uuid.UUID, SubscriptionItem]:
        """Of each subscription, its first (oldest) item whose provisioning status is `active`."""
        statement = (self.statement()
                     .where(SubscriptionItem.subscription_id.in_(subscription_ids),
                            SubscriptionItem.provisioning_status == ProvisioningStatus.ACTIVE)
                     .order_by(SubscriptionItem.created_at, SubscriptionItem.id))
        first: dict[uuid.UUID, SubscriptionItem] = {}
        for item in await self.all(statement):
            first.setdefault(item.subscription_id, item)
        return first

    async def store_snapshot(self, item_id: uuid.UUID, snapshot: dict[str, Any]) -> None:
        await self.execute(self.update(SubscriptionItem.id == item_id, server_info_snapshot=snapshot))

    async def of_subscription_by_id(self, subscription_id: uuid.UUID, item_id: uuid.UUID) -> SubscriptionItem | None:
        return await self.get_by(SubscriptionItem.id == item_id, SubscriptionItem.subscription_id == subscription_id)

    # --- suspension for non-payment: servers owed a stop or a start ---------------------------------------------

    def _of_user(self, user_id: uuid.UUID) -> Select[Any]:
        return (self.statement().join(Subscription, Subscription.id == SubscriptionItem.subscription_id)
                .where(Subscription.user_id == user_id))

    async def to_stop_of_user(self, user_id: uuid.UUID) -> list[SubscriptionItem]:
        """Servers of the user's suspended subscriptions not stopped for the suspension yet."""
        return await self.all(self._of_user(user_id).where(
            Subscription.suspended_at.is_not(None), Subscription.status.in_(BILLED_STATUSES),
            SubscriptionItem.provisioning_status == ProvisioningStatus.ACTIVE,
            SubscriptionItem.provider_reference.is_not(None), SubscriptionItem.stopped_for_suspension_at.is_(None),
        ).order_by(SubscriptionItem.created_at, SubscriptionItem.id))

    async def to_start_of_user(self, user_id: uuid.UUID) -> list[SubscriptionItem]:
        """Servers stopped for a suspension that has been lifted since (or whose subscription ended)."""
        return await self.all(self._of_user(user_id).where(
            Subscription.suspended_at.is_(None), Subscription.status.in_(BILLED_STATUSES),
            SubscriptionItem.stopped_for_suspension_at.is_not(None),
        ).order_by(SubscriptionItem.created_at, SubscriptionItem.id))

    async def users_with_servers_to_start(self) -> list[uuid.UUID]:
        statement = (self.statement(Subscription.user_id).distinct().select_from(SubscriptionItem)
                     .join(Subscription, Subscription.id == SubscriptionItem.subscription_id)
                     .where(Subscription.suspended_at.is_(None), Subscription.status.in_(BILLED_STATUSES),
                            SubscriptionItem.stopped_for_suspension_at.is_not(None)))
        return await self.all(statement)

    # --- the update job: active servers reachable over SSH ----------------------------------------------------

    def _updatable(self) -> Select[Any]:
        return (self.statement()
                .join(Subscription, Subscription.id == SubscriptionItem.subscription_id)
                .where(SubscriptionItem.provisioning_status == ProvisioningStatus.ACTIVE,
                       SubscriptionItem.provider_reference.is_not(None),
                       SubscriptionItem.ssh_private_key.is_not(None),
                       Subscription.status.in_(BILLED_STATUSES)))

    async def updatable_ids(self, limit: int) -> list[uuid.UUID]:
        statement = self._updatable().order_by(SubscriptionItem.created_at, SubscriptionItem.id)
        return [item.id for item in await self.all(page(statement, limit, 0))]

    async def get_updatable(self, item_id: uuid.UUID) -> SubscriptionItem | None:
        return await self.one_or_none(self._updatable().where(SubscriptionItem.id == item_id))

    # --- the recovery job: orders a crash interrupted ----------------------------------------------------------

    def _stale(self, cutoff: dt.datetime) -> Select[Any]:
        """(item, its subscription's status) of items untouched since `cutoff` whose order was interrupted:
        pending/failed in a billed subscription, a failed one whose stray search is still open, or an active
        one whose server info or A record is missing."""
        item, status = SubscriptionItem, SubscriptionItem.provisioning_status
        billed = Subscription.status.in_(BILLED_STATUSES)
        interrupted = and_(status.in_((ProvisioningStatus.PENDING, ProvisioningStatus.FAILED)), billed)
        search_open = and_(status == ProvisioningStatus.FAILED, item.hostname.is_not(None),
                           Subscription.status == SubscriptionStatus.CANCELED)
        no_server_info = or_(item.server_info_snapshot.is_(None), item.server_info_snapshot == JSON.NULL)
        dns_owed = and_(item.dns_pending_since.is_not(None), item.dns_pending_since <= cutoff)
        unpublished = and_(status == ProvisioningStatus.ACTIVE, item.provider_reference.is_not(None),
                           or_(no_server_info, dns_owed), billed)
        return (self.statement(SubscriptionItem, Subscription.status)
                .join(Subscription, Subscription.id == SubscriptionItem.subscription_id)
                .where(item.updated_at <= cutoff, or_(interrupted, search_open, unpublished)))

    async def stale_ids(self, cutoff: dt.datetime, limit: int) -> list[uuid.UUID]:
        """Longest untouched first."""
        statement = self._stale(cutoff).order_by(SubscriptionItem.updated_at, SubscriptionItem.id).limit(limit)
        return [item.id for item in await self.all(statement)]

    async def get_stale(self, item_id: uuid.UUID, cutoff: dt.datetime, *,
                        claim: bool = False) -> tuple[SubscriptionItem, str] | None:
        """(item, subscription status) if the item is stale; `claim`: both rows locked, None while another
        transaction holds them."""
        statement = self._stale(cutoff).where(SubscriptionItem.id == item_id)
        if claim:
            statement = self.for_update(statement, skip_locked=True)
        row = (await self.rows(statement))
        return (row[0][0], row[0][1]) if row else None


class ReservedHostnameRepository(Repository[ReservedHostname]):
    model = ReservedHostname

    async def reserve(self, hostname: str, item: SubscriptionItem) -> bool:
        """False when the name is taken (by any tenant: hostnames are unique over all of them)."""
        return await self.create_unless_taken(ReservedHostname(hostname=hostname, subscription_item_id=item.id))

    async def release_of(self, item: SubscriptionItem) -> None:
        await self.execute(self.delete(ReservedHostname.subscription_item_id == item.id))


class BackorderRepository(Repository[Backorder]):
    model = Backorder

    async def of_user(self, user_id: uuid.UUID, limit: int | None, offset: int | None) -> list[Backorder]:
        statement = self.statement().where(Backorder.user_id == user_id).order_by(Backorder.created_at.desc(), Backorder.id)
        return await self.page(statement, limit, offset)

    async def of_subscription(self, subscription_id: uuid.UUID) -> Backorder | None:
        return await self.get_by(Backorder.subscription_id == subscription_id)

    async def make_waiting_of_user_due(self, user_id: uuid.UUID, now: dt.datetime) -> None:
        """The user's waiting backorders become due at once (for the retry job's next run)."""
        await self.session.execute(
            self.update(Backorder.user_id == user_id, Backorder.status.in_(BackorderStatus.WAITING), retry_after=now)
            .execution_options(synchronize_session=False))

    async def due_ids(self, now: dt.datetime, limit: int) -> list[uuid.UUID]:
        """Waiting backorders whose `retryAfter` has passed, oldest first."""
        statement = (self.statement(Backorder.id)
                     .where(Backorder.status.in_(BackorderStatus.WAITING),
                            or_(Backorder.retry_after.is_(None), Backorder.retry_after <= now))
                     .order_by(Backorder.created_at, Backorder.id).limit(limit))
        return await self.all(statement)


class OpenPositionRepository(BillableRepository[OpenPosition]):
    model = OpenPosition

    async def withdraw_unbilled(self, subscription_id: uuid.UUID) -> int:
        """Delete the subscription's positions no invoice has taken yet; how many."""
        result = await self.execute(self.delete(OpenPosition.subscription_id == subscription_id,
                                                OpenPosition.invoice_id.is_(None)))
        return result.rowcount or 0

    async def count_of(self, subscription_id: uuid.UUID) -> int:
        return await self.count(OpenPosition.subscription_id == subscription_id)

    #: the order of an invoice's lines: as recorded, and positions recorded at one instant (a run that records
    #: several periods at once) by their period, before the id that makes the order total
    _BILLING_ORDER = (OpenPosition.created_at, OpenPosition.period_start, OpenPosition.id)

    def _unbilled_of_user(self, user_id: uuid.UUID) -> Select[Any]:
        return self.statement().where(OpenPosition.user_id == user_id, OpenPosition.invoice_id.is_(None))

    async def claim_unbilled_of_user(self, user_id: uuid.UUID) -> list[OpenPosition]:
        """The user's unbilled positions, oldest first (`_BILLING_ORDER`), locked (skipping rows another biller holds)."""
        statement = self._unbilled_of_user(user_id).order_by(*self._BILLING_ORDER)
        return await self.all(self.for_update(statement, skip_locked=True))

    async def claim_unbilled_of_users(self, user_ids: Sequence[uuid.UUID]) -> list[OpenPosition]:
        """`claim_unbilled_of_user` for many users at once (the billing day's batch)."""
        statement = (self.statement().where(OpenPosition.user_id.in_(user_ids), OpenPosition.invoice_id.is_(None))
                     .order_by(*self._BILLING_ORDER))
        return await self.all(self.for_update(statement, skip_locked=True))

    async def unbilled_total(self, **filters: Any) -> Any:
        """Of the tenant, or of a `user_id`."""
        return await self.scalar(self.unbilled_total_query(**filters))

    @classmethod
    def unbilled_total_query(cls, **filters: Any) -> Select[Any]:
        return cls.sum_query(OpenPosition.amount, OpenPosition.invoice_id.is_(None),
                              *(getattr(OpenPosition, name) == value for name, value in filters.items()))

    async def oldest_unbilled_by_user(self) -> dict[uuid.UUID, dt.datetime]:
        statement = self.statement(OpenPosition.user_id, self.min_of(OpenPosition.created_at)).where(
            OpenPosition.invoice_id.is_(None)).group_by(OpenPosition.user_id)
        return {user_id: created_at for user_id, created_at in await self.rows(statement)}


# --- suspension for non-payment (decabill/subscriptions/suspension.py) ------------------------------------


class CustomerSuspensionRepository(Repository[CustomerSuspension]):
    model = CustomerSuspension

    async def of_user(self, user_id: uuid.UUID, *, for_update: bool = False) -> CustomerSuspension | None:
        return await self.get_by(CustomerSuspension.user_id == user_id, for_update=for_update)

    async def of_users(self, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, CustomerSuspension]:
        if not user_ids:
            return {}
        return {s.user_id: s for s in await self.all(self.statement().where(CustomerSuspension.user_id.in_(user_ids)))}

    async def insert_once(self, values: dict[str, Any]) -> bool:
        """True when this call suspended the customer; False when a suspension was recorded before."""
        return await self.insert_if_missing(values, ["user_id"]) is not None

    async def lift(self, user_id: uuid.UUID) -> bool:
        """True when this call removed the suspension (exactly one caller does, however many race)."""
        result = await self.execute(self.delete(CustomerSuspension.user_id == user_id))
        return bool(result.rowcount)

    async def user_ids(self) -> list[uuid.UUID]:
        return await self.all(self.statement(CustomerSuspension.user_id))


class SuspensionPeriodRepository(Repository[SuspensionPeriod]):
    model = SuspensionPeriod

    async def close_open(self, subscription_ids: list[uuid.UUID], now: dt.datetime) -> None:
        if subscription_ids:
            await self.execute(self.update(SuspensionPeriod.subscription_id.in_(subscription_ids),
                                           SuspensionPeriod.ended_at.is_(None)).values(ended_at=now))

    async def overlapping(self, subscription_id: uuid.UUID, start: dt.datetime,
                          end: dt.datetime) -> list[SuspensionPeriod]:
        """The subscription's suspension periods that overlap [start, end), earliest first."""
        return await self.all(self.statement().where(
            SuspensionPeriod.subscription_id == subscription_id, SuspensionPeriod.started_at < end,
            or_(SuspensionPeriod.ended_at.is_(None), SuspensionPeriod.ended_at > start))
            .order_by(SuspensionPeriod.started_at, SuspensionPeriod.id))
