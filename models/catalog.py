"""The product catalog: service types (a product family bound to a provisioning provider), their
priced plans, and the audit rows of availability checks (behavior.md part A §4).

Every table carries `tenant_id` — plans too, although their service type already has one — so that
the repository base scopes each of them directly.
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


def _json(default: Any) -> Any:
    return Field(
        default_factory=lambda: type(default)(default),
        sa_column=Column(JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    )


class ServiceType(Timestamped, table=True):
    __tablename__ = "service_types"
    __table_args__ = (UniqueConstraint("tenant_id", "key", name="uq_service_types_tenant_key"),)

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    key: str = Field(max_length=100)  # fixed once created
    name: str = Field(max_length=255)
    description: str | None = Field(default=None, sa_type=Text)
    # `hetzner`, `digital-ocean`, a plugin's id, or any id of a product without provisioning (D24).
    provider: str = Field(max_length=100)
    config_schema: dict[str, Any] = _json({})
    is_active: bool = Field(default=True)


class ServicePlan(Timestamped, table=True):
    __tablename__ = "service_plans"
    __table_args__ = (Index("ix_service_plans_tenant_type", "tenant_id", "service_type_id"),)

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    # RESTRICT: a type with plans cannot disappear underneath them (the service answers 409 first).
    service_type_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("service_types.id", ondelete="RESTRICT"), nullable=False)
    )
    name: str = Field(max_length=255)
    description: str | None = Field(default=None, sa_type=Text)
    billing_interval_type: str = Field(max_length=16)  # hour | day | month
    billing_interval_value: int = Field(default=1)
    billing_day_of_month: int | None = Field(default=None)
    cancel_at_period_end: bool = Field(default=True)
    min_commitment_days: int = Field(default=0)
    notice_days: int = Field(default=0)
    base_price: Decimal | None = money_field()
    margin_percent: Decimal | None = money_field()
    margin_fixed: Decimal | None = money_field()
    provider_config_defaults: dict[str, Any] = _json({})
    ordering_highlights: list[dict[str, str]] = _json([])
    allow_customer_location_selection: bool = Field(default=False)
    is_active: bool = Field(default=True)


class AvailabilitySnapshot(SQLModel, table=True):
    """One row per availability check: what was asked, what the provider said (audit only; no API
    reads it). No foreign key to the service type: audit rows must not block deleting a type."""

    __tablename__ = "availability_snapshots"

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    service_type_id: uuid.UUID | None = Field(default=None)
    provider: str = Field(max_length=100)
    region: str = Field(max_length=255)
    server_type: str = Field(max_length=255)
    is_available: bool
    reason: str | None = Field(default=None, max_length=255)
    raw_response: dict[str, Any] = _json({})
    captured_at: dt.datetime = timestamp_field(default_now=True, index=True)
