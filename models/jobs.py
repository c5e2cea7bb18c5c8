"""Job bookkeeping shared by every domain's background work.

* `JobLease` — a named, expiring claim (`decabill.jobs.leases`): the unit of work that holds
  `backorder:<id>` is the only one provisioning for that backorder until it releases the lease or the
  lease expires (a crashed worker blocks nobody for longer than the lease).
* `NumberSequence` — gapless per-tenant counters (`decabill.numbering`): subscription numbers now,
  invoice numbers later.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import id_field, tenant_field, timestamp_field


class JobLease(SQLModel, table=True):
    __tablename__ = "job_leases"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_job_leases_tenant_name"),)

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    name: str = Field(max_length=200)
    holder: str = Field(max_length=64)
    expires_at: dt.datetime = timestamp_field(nullable=False)
    created_at: dt.datetime = timestamp_field(default_now=True)


class NumberSequence(SQLModel, table=True):
    __tablename__ = "number_sequences"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_number_sequences_tenant_name"),)

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    name: str = Field(max_length=100)
    last_value: int = Field(default=0)
