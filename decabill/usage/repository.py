"""Queries on usage records (the table is declared with invoicing's in `models/invoicing.py`: invoicing
bills them, this domain records them)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.sql import Select

from decabill.repository import BillableRepository
from models.invoicing import UsageRecord


class UsageRecordRepository(BillableRepository[UsageRecord]):
    model = UsageRecord

    async def latest_of(self, subscription_id: uuid.UUID) -> UsageRecord | None:
        statement = (self.statement().where(UsageRecord.subscription_id == subscription_id)
                     .order_by(UsageRecord.created_at.desc(), UsageRecord.id.desc()).limit(1))
        return await self.one_or_none(statement)

    # --- billing: a record costing something is billed once; free ones are information -----------------------

    @staticmethod
    def _unbilled(**filters: Any) -> tuple[Any, ...]:
        return (UsageRecord.invoice_id.is_(None), UsageRecord.amount > 0,
                *(getattr(UsageRecord, name) == value for name, value in filters.items()))

    async def claim_unbilled(self, **filters: Any) -> list[UsageRecord]:
        """Unbilled records (of a `user_id` or `subscription_id`), oldest first, locked (skipping rows another
        biller holds)."""
        statement = self.statement().where(*self._unbilled(**filters)).order_by(UsageRecord.created_at, UsageRecord.id)
        return await self.all(self.for_update(statement, skip_locked=True))

    async def claim_unbilled_of_users(self, user_ids: Any) -> list[UsageRecord]:
        """`claim_unbilled(user_id=...)` for many users at once (the billing day's batch)."""
        statement = (self.statement().where(*self._unbilled(), UsageRecord.user_id.in_(user_ids))
                     .order_by(UsageRecord.created_at, UsageRecord.id))
        return await self.all(self.for_update(statement, skip_locked=True))

    async def unbilled_total(self, **filters: Any) -> Any:
        return await self.scalar(self.unbilled_total_query(**filters))

    @classmethod
    def unbilled_total_query(cls, **filters: Any) -> Select[Any]:
        return cls.sum_query(UsageRecord.amount, *cls._unbilled(**filters))

    async def oldest_unbilled_by_user(self) -> dict[uuid.UUID, dt.datetime]:
        statement = self.statement(UsageRecord.user_id, self.min_of(UsageRecord.created_at)).where(
            *self._unbilled()).group_by(UsageRecord.user_id)
        return {user_id: created_at for user_id, created_at in await self.rows(statement)}
