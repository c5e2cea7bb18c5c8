"""Queries on the job bookkeeping tables: leases (`decabill.jobs.leases`), the gapless counters
(`decabill.numbering`) and the job ledger (`decabill.jobs.ledger`, the installation's own, across tenants)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import func

from decabill.repository import InstallationRepository, Repository
from models.jobs import JobLease, JobRunStatus, JobUnitRun, NumberSequence, PeriodicJobRun


class JobLeaseRepository(Repository[JobLease]):
    model = JobLease

    async def claim(self, name: str, holder: str, expires_at: dt.datetime, now: dt.datetime) -> JobLease | None:
        """Insert the lease unless it exists, then lock its row; None when another acquirer is deciding
        about it right now (skip_locked: that counts as held)."""
        await self.insert_if_missing({"id": uuid.uuid4(), "name": name, "holder": holder, "expires_at": expires_at,
                                      "created_at": now}, ["tenant_id", "name"])
        return await self.get_by(JobLease.name == name, for_update=True, skip_locked=True)

    async def release(self, name: str, holder: str) -> None:
        await self.execute(self.delete(JobLease.name == name, JobLease.holder == holder))


class NumberSequenceRepository(Repository[NumberSequence]):
    model = NumberSequence

    async def bump(self, name: str, by: int = 1) -> int | None:
        """`UPDATE ... SET last_value = last_value + by RETURNING last_value`: the row stays locked until the
        transaction ends. None when the counter row does not exist yet."""
        statement = (self.update(NumberSequence.name == name, last_value=NumberSequence.last_value + by)
                     .returning(NumberSequence.last_value))
        return (await self.execute(statement)).scalar_one_or_none()

    async def create_if_missing(self, name: str) -> None:
        await self.insert_if_missing({"id": uuid.uuid4(), "name": name, "last_value": 0}, ["tenant_id", "name"])

    async def current(self, name: str) -> int:
        """The counter's last value without taking it (0 before the first `bump`)."""
        value = await self.first(self.statement(NumberSequence.last_value).where(NumberSequence.name == name))
        return int(value or 0)


class JobUnitRunRepository(InstallationRepository[JobUnitRun]):
    """The job ledger's units (running or failed), across tenants."""

    model = JobUnitRun

    async def claim(self, task_name: str, args_key: str, values: dict[str, Any]) -> tuple[JobUnitRun, bool]:
        """The unit's row, locked: inserted from `values` unless it exists; and whether it was inserted now."""
        marker = uuid.uuid4()
        await self.insert_if_missing({**values, "id": marker, "task_name": task_name, "args_key": args_key},
                                     ["task_name", "args_key"])
        row = await self.get_by(JobUnitRun.task_name == task_name, JobUnitRun.args_key == args_key, for_update=True)
        assert row is not None
        return row, row.id == marker

    async def workers_running_since(self, task_names: list[str], since: dt.datetime) -> list[str | None]:
        """The workers (host:pid) recorded running a unit of `task_names` started at or after `since`."""
        statement = (self.statement(JobUnitRun.worker)
                     .where(JobUnitRun.status == JobRunStatus.RUNNING, JobUnitRun.task_name.in_(task_names),
                            JobUnitRun.started_at >= since)
                     .distinct())
        return [worker for (worker,) in await self.rows(statement)]

    async def forget(self, task_name: str, args_key: str) -> None:
        await self.execute(self.delete(JobUnitRun.task_name == task_name, JobUnitRun.args_key == args_key))

    async def counts(self) -> list[tuple[str, str, int, dt.datetime]]:
        """(task name, status, units, oldest start) per task and status."""
        statement = (self.statement(JobUnitRun.task_name, JobUnitRun.status, func.count(),
                                    self.min_of(JobUnitRun.started_at))
                     .group_by(JobUnitRun.task_name, JobUnitRun.status)
                     .order_by(JobUnitRun.task_name, JobUnitRun.status))
        return [(name, status, count, oldest) for name, status, count, oldest in await self.rows(statement)]

    async def with_status(self, status: str, limit: int) -> list[JobUnitRun]:
        statement = (self.statement().where(JobUnitRun.status == status)
                     .order_by(JobUnitRun.started_at, JobUnitRun.id).limit(limit))
        return await self.all(statement)

    async def status_of(self, task_name: str, args_key: str) -> str | None:
        return await self.one_or_none(self.statement(JobUnitRun.status).where(
            JobUnitRun.task_name == task_name, JobUnitRun.args_key == args_key))

    async def failed_count(self, task_name: str) -> int:
        return await self.count(JobUnitRun.task_name == task_name, JobUnitRun.status == JobRunStatus.FAILED)


class PeriodicJobRunRepository(InstallationRepository[PeriodicJobRun]):
    """The last run of each periodic coordinator."""

    model = PeriodicJobRun

    async def claim(self, task_name: str, values: dict[str, Any]) -> PeriodicJobRun:
        """The coordinator's row, locked (inserted from `values` unless it exists)."""
        await self.insert_if_missing({**values, "task_name": task_name}, ["task_name"])
        row = await self.of(task_name, for_update=True)
        assert row is not None
        return row

    async def of(self, task_name: str, *, for_update: bool = False) -> PeriodicJobRun | None:
        return await self.get_by(PeriodicJobRun.task_name == task_name, for_update=for_update)

    async def by_name(self) -> list[PeriodicJobRun]:
        return await self.all(self.statement().order_by(PeriodicJobRun.task_name))
