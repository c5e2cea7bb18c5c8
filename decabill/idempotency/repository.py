from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from decabill.repository import Repository
from models.idempotency import IdempotencyKey


class IdempotencyKeyRepository(Repository[IdempotencyKey]):
    model = IdempotencyKey

    async def insert_claim(self, values: dict[str, Any]) -> uuid.UUID | None:
        """The new row's id, or None when the (tenant, caller, key) row exists (waits for a concurrent insert
        to commit or roll back on PostgreSQL, so the row is then readable)."""
        return await self.insert_if_missing(values, ["tenant_id", "caller", "key"])

    async def of(self, caller: str, key: str) -> IdempotencyKey | None:
        return await self.get_by(IdempotencyKey.caller == caller, IdempotencyKey.key == key, for_update=True,
                                 reload=True)

    async def release(self, row_id: uuid.UUID, locked_at: dt.datetime) -> None:
        """Forget a claim whose request failed (only if it is still this request's claim)."""
        await self.execute(self.delete(IdempotencyKey.id == row_id, IdempotencyKey.locked_at == locked_at))

    async def delete_expired(self, now: dt.datetime) -> int:
        result = await self.execute(self.delete(IdempotencyKey.expires_at <= now))
        return result.rowcount or 0
