"""Queries on the customers domain's table (`customer_profiles`)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.sql import Select

from decabill import db
from decabill.repository import Repository, page
from models.customers import CustomerProfile
from models.identity import User


class CustomerProfileRepository(Repository[CustomerProfile]):
    model = CustomerProfile

    async def of_user(self, user_id: uuid.UUID, *, for_update: bool = False) -> CustomerProfile | None:
        return await self.get_by(CustomerProfile.user_id == user_id, for_update=for_update)

    async def of_users(self, user_ids: Any) -> dict[uuid.UUID, CustomerProfile]:
        return {profile.user_id: profile
                for profile in await self.all(self.statement().where(CustomerProfile.user_id.in_(user_ids)))}

    async def ensure_exists(self, user_id: uuid.UUID) -> bool:
        """Insert an empty profile for the user unless one exists (True when this call inserted it); two first
        saves at once: the unique user_id lets exactly one insert through."""
        now = db.utcnow()
        return await self.insert_if_missing({"id": uuid.uuid4(), "user_id": user_id, "created_at": now, "updated_at": now},
                                     ["user_id"]) is not None

    def _with_email(self) -> Select[Any]:
        return self.statement(CustomerProfile, User.email).join(User, User.id == CustomerProfile.user_id)

    async def with_email(self, profile_id: uuid.UUID, *, for_update: bool = False) -> tuple[CustomerProfile, str] | None:
        """The profile and its user's email."""
        statement = self._with_email().where(CustomerProfile.id == profile_id)
        rows = await self.rows(self.for_update(statement) if for_update else statement)
        return (rows[0][0], rows[0][1]) if rows else None

    async def page_with_email(self, limit: int, offset: int) -> tuple[list[tuple[CustomerProfile, str]], int]:
        """(profile, its user's email), most recently changed first, and how many profiles there are."""
        statement = self._with_email().order_by(CustomerProfile.updated_at.desc(), CustomerProfile.id)
        rows = [(profile, email) for profile, email in await self.rows(page(statement, limit, offset))]
        return rows, await self.count()

    async def create_once(self, user_id: uuid.UUID, fields: dict[str, Any]) -> uuid.UUID | None:
        """Insert the user's profile; None when the user has one (of two concurrent creations exactly one inserts)."""
        now = db.utcnow()
        return await self.insert_if_missing({"id": uuid.uuid4(), "user_id": user_id, "created_at": now,
                                             "updated_at": now, **fields}, ["user_id"])

    async def vat_recheck_due(self, now: dt.datetime, limit: int) -> list[uuid.UUID]:
        """Profiles whose pending VAT ID is due for another VIES attempt, longest waiting first."""
        statement = self.statement(CustomerProfile.id).where(
            CustomerProfile.vat_id_status == "pending", CustomerProfile.vat_id_recheck_at <= now,
        ).order_by(CustomerProfile.vat_id_recheck_at, CustomerProfile.id)
        return await self.page(statement, limit, 0)
