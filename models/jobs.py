"""Job bookkeeping shared by every domain's background work.

* `JobLease` — a named, expiring claim (`decabill.jobs.leases`): the unit of work that holds
  `backorder:<id>` is the only one provisioning for that backorder until it releases the lease or the
  lease expires (a crashed worker blocks nobody for longer than the lease).
* `NumberSequence` — gapless per-tenant counters (`decabill.numbering`): subscription numbers now,
  invoice numbers later.
* `JobUnitRun` — the job ledger's units that are running or whose last run failed (`decabill.jobs.ledger`);
  a unit that succeeds leaves no row, so the table holds what an operator must look at, nothing more.
* `PeriodicJobRun` — when each periodic coordinator last ran and how that went (one row per coordinator).
"""

from __future__ import annotations

import datetime as dt
import uuid

from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
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


class JobRunStatus:
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # periodic coordinators only: a unit that succeeds leaves no row
    FAILED = "failed"


class JobUnitRun(SQLModel, table=True):
    """One unit (task name + arguments) that is running now or failed the last time it ran. Not tenant-owned
    business data: the operator's view across tenants (`decabill jobs`); `tenant_id` is the unit's first
    argument, for display."""

    __tablename__ = "job_unit_runs"
    __table_args__ = (
        UniqueConstraint("task_name", "args_key", name="uq_job_unit_runs_task_args"),
        Index("ix_job_unit_runs_status", "status", "task_name"),
    )

    id: uuid.UUID = id_field()
    task_name: str = Field(max_length=200)
    args_key: str = Field(max_length=64)  # sha256 of the JSON arguments: one row per unit however long they are
    args: Any = Field(default=None, sa_column=Column(JSON, nullable=False))
    tenant_id: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=16)
    attempts: int = Field(default=0)  # runs that failed in a row
    worker: str | None = Field(default=None, max_length=200)  # host:pid of the last run
    started_at: dt.datetime = timestamp_field(nullable=False)
    finished_at: dt.datetime | None = timestamp_field()
    error_type: str | None = Field(default=None, max_length=200)
    error: str | None = Field(default=None, sa_type=Text)


class PeriodicJobRun(SQLModel, table=True):
    """The last run of one periodic coordinator (keyed by its task name)."""

    __tablename__ = "periodic_job_runs"

    task_name: str = Field(primary_key=True, max_length=200)
    status: str = Field(max_length=16)
    worker: str | None = Field(default=None, max_length=200)
    started_at: dt.datetime = timestamp_field(nullable=False)
    finished_at: dt.datetime | None = timestamp_field()
    last_success_at: dt.datetime | None = timestamp_field()
    units_sent: int | None = Field(default=None)
    error_type: str | None = Field(default=None, max_length=200)
    error: str | None = Field(default=None, sa_type=Text)
