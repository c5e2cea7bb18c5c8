"""Subscriptions and what hangs off them (behavior.md part A §6, part B §1).

* `Subscription` — a user's order of a plan; `number` is `SUB-000001` style, unique per tenant.
* `SubscriptionItem` — the provisioned unit (one server) of a subscription. Secrets stay encrypted at
  rest with ENCRYPTION_KEY: `config_snapshot` (the effective configuration, JSON) and `ssh_private_key`.
* `ReservedHostname` — DNS labels under DNS_BASE_DOMAIN, reserved before a server is created. Unique
  over all tenants: the base domain is one DNS namespace, whichever tenant ordered.
* `Backorder` — an order waiting for provider capacity; it belongs to the `pending_backorder`
  subscription it will fulfil (D4), at most one per subscription.
* `OpenPosition` — one charge to invoice: a subscription's period (`recurring`) or its last, partial
  period at cancellation (`final`). The amount is fixed when the position is recorded. UNIQUE
  (subscription_id, period_start): a period is billed once however often a job runs.

Billing history is never deleted with its owner: subscriptions, backorders and positions reference
users, plans and service types with ON DELETE RESTRICT.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import Timestamped, id_field, money_field, tenant_field, timestamp_field


def _json(*, nullable: bool = False, default: Any = None) -> Any:
    if nullable:
        return Field(default=None, sa_column=Column(JSON().with_variant(JSONB(), "postgresql"), nullable=True))
    return Field(default_factory=lambda: type(default)(default),
                 sa_column=Column(JSON().with_variant(JSONB(), "postgresql"), nullable=False))


def _fk(target: str, ondelete: str, *, nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=Column(ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index))


class SubscriptionStatus:
    ACTIVE = "active"
    PENDING_BACKORDER = "pending_backorder"
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"


class ProvisioningStatus:
    PENDING = "pending"
    ACTIVE = "active"
    FAILED = "failed"


class BackorderStatus:
    PENDING = "pending"
    RETRYING = "retrying"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"  # the contract's spelling for backorders
    FAILED = "failed"  # in the contract's enum; never assigned

    WAITING = (PENDING, RETRYING)


class Subscription(Timestamped, table=True):
    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number", name="uq_subscriptions_tenant_number"),
        Index("ix_subscriptions_tenant_user", "tenant_id", "user_id", "created_at"),
        Index("ix_subscriptions_tenant_status_billing", "tenant_id", "status", "next_billing_at"),
        Index("ix_subscriptions_tenant_status_cancel", "tenant_id", "status", "cancel_effective_at"),
    )

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    number: str = Field(max_length=32)
    plan_id: uuid.UUID = _fk("service_plans.id", "RESTRICT")
    user_id: uuid.UUID = _fk("users.id", "RESTRICT")
    status: str = Field(max_length=32)
    current_period_start: dt.datetime | None = timestamp_field()
    current_period_end: dt.datetime | None = timestamp_field()
    next_billing_at: dt.datetime | None = timestamp_field()
    cancel_requested_at: dt.datetime | None = timestamp_field()
    cancel_effective_at: dt.datetime | None = timestamp_field()
    resumed_at: dt.datetime | None = timestamp_field()
    activated_at: dt.datetime | None = timestamp_field()  # first time active (order, or backorder fulfilment)
    ended_at: dt.datetime | None = timestamp_field()  # when it became `canceled`
    # The customer price of one full billing period, fixed when the subscription became active (the price
    # the customer was shown; later plan changes apply to new orders).
    period_price: Decimal | None = money_field()
    currency: str = Field(default="EUR", max_length=3)
    # Set while the customer's account is suspended for non-payment (dunning); the `status` stays as it is.
    suspended_at: dt.datetime | None = timestamp_field()


class SubscriptionItem(Timestamped, table=True):
    __tablename__ = "subscription_items"

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    subscription_id: uuid.UUID = _fk("subscriptions.id", "CASCADE", index=True)
    service_type_id: uuid.UUID = _fk("service_types.id", "RESTRICT", index=True)
    provider: str = Field(max_length=100)  # the service type's provider when ordered (servers stay where they are)
    service: str = Field(default="controller", max_length=16)  # controller | manager
    region: str | None = Field(default=None, max_length=100)
    server_type: str | None = Field(default=None, max_length=100)
    config_snapshot: str | None = Field(default=None, sa_type=Text)  # encrypted JSON
    provisioning_status: str = Field(default=ProvisioningStatus.PENDING, max_length=16)
    provider_reference: str | None = Field(default=None, max_length=255)  # never returned by the API
    hostname: str | None = Field(default=None, max_length=128)
    server_info_snapshot: dict[str, Any] | None = _json(nullable=True)  # no secrets
    ssh_private_key: str | None = Field(default=None, sa_type=Text)  # encrypted OpenSSH private key
    ssh_public_key: str | None = Field(default=None, sa_type=Text)
    ssh_host_public_key: str | None = Field(default=None, sa_type=Text)  # pinned host key of the server
    # Set when the A record of the hostname could not be created at Cloudflare (DNS configured, Cloudflare
    # refused or failed): the record is still owed, and the order recovery job creates it; cleared once made.
    dns_pending_since: dt.datetime | None = timestamp_field()
    # When the server was stopped because its subscription was suspended (dunning): it is started again, and
    # this cleared, when the suspension is lifted. NULL while suspended = the stop is still owed (retried).
    stopped_for_suspension_at: dt.datetime | None = timestamp_field()


class ReservedHostname(SQLModel, table=True):
    __tablename__ = "reserved_hostnames"
    __table_args__ = (
        UniqueConstraint("hostname", name="uq_reserved_hostnames_hostname"),
        UniqueConstraint("subscription_item_id", name="uq_reserved_hostnames_item"),
    )

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    hostname: str = Field(max_length=128)
    subscription_item_id: uuid.UUID = _fk("subscription_items.id", "CASCADE")
    created_at: dt.datetime = timestamp_field(default_now=True)


class Backorder(Timestamped, table=True):
    __tablename__ = "backorders"
    __table_args__ = (
        UniqueConstraint("subscription_id", name="uq_backorders_subscription"),
        Index("ix_backorders_tenant_user", "tenant_id", "user_id", "created_at"),
        Index("ix_backorders_tenant_status_retry", "tenant_id", "status", "retry_after"),
    )

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    user_id: uuid.UUID = _fk("users.id", "RESTRICT")
    subscription_id: uuid.UUID = _fk("subscriptions.id", "RESTRICT")
    service_type_id: uuid.UUID = _fk("service_types.id", "RESTRICT")
    plan_id: uuid.UUID = _fk("service_plans.id", "RESTRICT")
    requested_config_snapshot: str | None = Field(default=None, sa_type=Text)  # encrypted JSON
    status: str = Field(default=BackorderStatus.PENDING, max_length=16)
    failure_reason: str | None = Field(default=None, max_length=255)
    provider_errors: dict[str, Any] = _json(default={})
    preferred_alternatives: dict[str, Any] = _json(default={})
    retry_after: dt.datetime | None = timestamp_field()
    attempts: int = Field(default=0)


class OpenPosition(SQLModel, table=True):
    __tablename__ = "open_positions"
    __table_args__ = (
        UniqueConstraint("subscription_id", "period_start", name="uq_open_positions_subscription_period"),
        Index("ix_open_positions_tenant_user_unbilled", "tenant_id", "user_id", "invoice_id"),
    )

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    subscription_id: uuid.UUID = _fk("subscriptions.id", "RESTRICT")
    user_id: uuid.UUID = _fk("users.id", "RESTRICT")
    kind: str = Field(max_length=16)  # recurring | final
    description: str = Field(max_length=500)
    period_start: dt.datetime = timestamp_field(nullable=False)
    period_end: dt.datetime = timestamp_field(nullable=False)  # the reference's `bill_until`
    amount: Decimal = money_field(nullable=False)  # net, 4 decimal places
    currency: str = Field(default="EUR", max_length=3)
    # NULL = not invoiced yet; set in the transaction that creates the invoice (decabill/invoicing/billing.py).
    # Deleting a draft invoice (admin billing) gives its positions back (SET NULL).
    invoice_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("invoices.id", ondelete="SET NULL", name="fk_open_positions_invoice_id_invoices"),
                                 nullable=True))
    created_at: dt.datetime = timestamp_field(default_now=True, index=True)


class CustomerSuspension(SQLModel, table=True):
    """A customer whose account is suspended for non-payment (dunning): new orders and starting or restarting
    servers are refused, naming `invoice_number`. One row per suspended customer; lifting deletes it."""

    __tablename__ = "customer_suspensions"
    __table_args__ = (UniqueConstraint("user_id", name="uq_customer_suspensions_user"),)

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    user_id: uuid.UUID = _fk("users.id", "CASCADE")
    invoice_id: uuid.UUID | None = Field(default=None)  # the unpaid invoice that caused it (no FK: invoicing is above)
    invoice_number: str | None = Field(default=None, max_length=64)
    billable: bool = Field(default=True)  # the policy's billWhileSuspended when it began
    suspended_at: dt.datetime = timestamp_field(nullable=False)


class SuspensionPeriod(SQLModel, table=True):
    """A span during which a subscription was suspended and must not be billed (the dunning policy's
    `billWhileSuspended` false). `ended_at` NULL = still suspended. Billing subtracts these spans."""

    __tablename__ = "suspension_periods"
    __table_args__ = (Index("ix_suspension_periods_subscription", "subscription_id", "started_at"),)

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    subscription_id: uuid.UUID = _fk("subscriptions.id", "CASCADE")
    started_at: dt.datetime = timestamp_field(nullable=False)
    ended_at: dt.datetime | None = timestamp_field()
