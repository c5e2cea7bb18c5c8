"""Queries on the identity domain's table (`users`)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Text, cast, func
from sqlalchemy.dialects.postgresql import ARRAY, array

from decabill.repository import Repository
from models.identity import User

#: the longest piece of an e-mail that `ix_users_email_short_grams` indexes (migration 0034)
EMAIL_GRAM = 2


class UserRepository(Repository[User]):
    model = User

    @staticmethod
    def lower_email_has_piece(piece: Any) -> Any:
        """PostgreSQL: the lower-cased e-mail has `piece` (of at most `EMAIL_GRAM` characters) among its pieces, as
        `ix_users_email_short_grams` (migration 0034) indexes them: the same test as the e-mail holding it, with an
        index to serve it where no trigram index can."""
        pieces = func.decabill_short_grams(func.lower(User.email), type_=ARRAY(Text))
        return pieces.contains(array([cast(piece, Text)]))

    async def by_ids(self, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, User]:
        if not user_ids:
            return {}
        return {u.id: u for u in await self.all(self.statement().where(User.id.in_(user_ids)))}

    async def get_by_email(self, email: str) -> User | None:
        return await self.get_by(User.email == email)

    async def get_by_keycloak_sub(self, sub: str) -> User | None:
        return await self.get_by(User.keycloak_sub == sub)

    async def get_in_any_tenant(self, user_id: uuid.UUID) -> User | None:
        """A token's subject, whichever tenant it belongs to (the caller compares it with the request's)."""
        return await self.one_or_none(self.in_any_tenant().where(User.id == user_id))

    async def newest_first(self, limit: int | None, offset: int | None) -> list[User]:
        return await self.page(self.statement().order_by(User.created_at.desc(), User.id), limit, offset)

    async def email_of(self, user_id: uuid.UUID) -> str | None:
        return await self.one_or_none(self.statement(User.email).where(User.id == user_id))

    async def emails_of(self, user_ids: Any) -> dict[uuid.UUID, str | None]:
        return {user_id: email
                for user_id, email in await self.rows(self.statement(User.id, User.email).where(User.id.in_(user_ids)))}

    async def admin_emails(self) -> list[str]:
        statement = self.statement(User.email).where(User.role == "admin", User.locked_at.is_(None))
        return await self.all(statement.order_by(User.created_at, User.id))

    async def of_ids(self, user_ids: list[uuid.UUID]) -> list[User]:
        return await self.all(self.statement().where(User.id.in_(user_ids)).order_by(User.created_at, User.id))
