"""Queries on dunning's tables: the tenant's policy, the steps applied to invoices, paused customers."""

from __future__ import annotations

import datetime as dt
import uuid

from decabill.repository import Repository
from models.dunning import DunningPause, DunningPolicy, DunningStep


class DunningPolicyRepository(Repository[DunningPolicy]):
    model = DunningPolicy

    async def current(self, *, for_update: bool = False) -> DunningPolicy | None:
        return await self.get_by(for_update=for_update)

    async def insert_once(self, values: dict) -> None:
        await self.insert_if_missing({"id": uuid.uuid4(), **values}, ["tenant_id"])


class DunningStepRepository(Repository[DunningStep]):
    model = DunningStep


class DunningPauseRepository(Repository[DunningPause]):
    model = DunningPause

    async def of_user(self, user_id: uuid.UUID, *, for_update: bool = False) -> DunningPause | None:
        return await self.get_by(DunningPause.user_id == user_id, for_update=for_update)

    async def active_of_user(self, user_id: uuid.UUID, now: dt.datetime) -> DunningPause | None:
        return await self.get_by(DunningPause.user_id == user_id, DunningPause.paused_until > now)

    async def of_users(self, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, DunningPause]:
        if not user_ids:
            return {}
        return {p.user_id: p for p in await self.all(self.statement().where(DunningPause.user_id.in_(user_ids)))}

    async def remove_of_user(self, user_id: uuid.UUID) -> None:
        await self.execute(self.delete(DunningPause.user_id == user_id))
