"""Dunning (decabill/dunning): the tenant's policy, the steps applied to overdue invoices, and customers
whose dunning is paused.

* `DunningPolicy` — one per tenant (none = the default policy). `steps` is the ordered list
  `[{"days": 3, "action": "remind"}, ...]` (days after the due date).
* `DunningStep` — one row per step applied to an invoice, UNIQUE (invoice_id, days, action): a step is
  applied once per invoice however many workers run the job, and however often.
* `DunningPause` — a customer whose dunning is paused until `paused_until` (a payment plan).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from models.base import Timestamped, id_field, tenant_field, timestamp_field


class DunningAction:
    REMIND = "remind"
    SUSPEND = "suspend"
    TERMINATE = "terminate"

    ALL = (REMIND, SUSPEND, TERMINATE)


class DunningPolicy(Timestamped, table=True):
    __tablename__ = "dunning_policies"
    __table_args__ = (UniqueConstraint("tenant_id", name="uq_dunning_policies_tenant"),)

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    enabled: bool = Field(default=True)
    steps: list[dict[str, Any]] = Field(default_factory=list,
                                        sa_column=Column(JSON().with_variant(JSONB(), "postgresql"), nullable=False))
    bill_while_suspended: bool = Field(default=True)


class DunningStep(SQLModel, table=True):
    __tablename__ = "dunning_steps"
    __table_args__ = (
        UniqueConstraint("invoice_id", "days", "action", name="uq_dunning_steps_invoice_step"),
        Index("ix_dunning_steps_tenant_user", "tenant_id", "user_id"),
    )

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    invoice_id: uuid.UUID = Field(sa_column=Column(ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False))
    user_id: uuid.UUID = Field(sa_column=Column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False))
    level: int = Field()
    days: int = Field()
    action: str = Field(max_length=16)
    applied_at: dt.datetime = timestamp_field(nullable=False)


class DunningPause(Timestamped, table=True):
    __tablename__ = "dunning_pauses"
    __table_args__ = (UniqueConstraint("user_id", name="uq_dunning_pauses_user"),)

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    user_id: uuid.UUID = Field(sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False))
    paused_until: dt.datetime = timestamp_field(nullable=False)
    reason: str | None = Field(default=None, max_length=500)
