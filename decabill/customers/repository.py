"""Queries on the customers domain's table (`customer_profiles`)."""

from __future__ import annotations

import uuid

from decabill import db
from decabill.repository import Repository
from models.customers import CustomerProfile


class CustomerProfileRepository(Repository[CustomerProfile]):
    model = CustomerProfile

    async def of_user(self, user_id: uuid.UUID, *, for_update: bool = False) -> CustomerProfile | None:
        return await self.get_by(CustomerProfile.user_id == user_id, for_update=for_update)

    async def ensure_exists(self, user_id: uuid.UUID) -> None:
        """Insert an empty profile for the user unless one exists; two first saves at once: the unique
        user_id lets exactly one insert through."""
        now = db.utcnow()
        await self.insert_if_missing({"id": uuid.uuid4(), "user_id": user_id, "created_at": now, "updated_at": now},
                                     ["user_id"])
