"""Queries on the job bookkeeping tables: leases (`decabill.jobs.leases`) and the gapless counters
(`decabill.numbering`)."""

from __future__ import annotations

import datetime as dt
import uuid

from decabill.repository import Repository
from models.jobs import JobLease, NumberSequence


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

    async def bump(self, name: str) -> int | None:
        """`UPDATE ... SET last_value = last_value + 1 RETURNING last_value`: the row stays locked until the
        transaction ends. None when the counter row does not exist yet."""
        statement = (self.update(NumberSequence.name == name, last_value=NumberSequence.last_value + 1)
                     .returning(NumberSequence.last_value))
        return (await self.execute(statement)).scalar_one_or_none()

    async def create_if_missing(self, name: str) -> None:
        await self.insert_if_missing({"id": uuid.uuid4(), "name": name, "last_value": 0}, ["tenant_id", "name"])
