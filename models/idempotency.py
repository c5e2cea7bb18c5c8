"""Idempotency keys of write requests (`Idempotency-Key` header, decabill/idempotency).

One row per (tenant, caller, key): the hash of the first request, whether it is still running, and the
response it got, kept until `expires_at` so a retry gets that response instead of doing the work again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import id_field, tenant_field, timestamp_field


class IdempotencyState:
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "caller", "key", name="uq_idempotency_keys_tenant_caller_key"),)

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    caller: str = Field(max_length=64)  # the user's id, or "api-key" for the static key
    key: str = Field(max_length=255)
    operation: str = Field(max_length=100)  # operationId of the first request
    request_hash: str = Field(max_length=64)  # sha256 of operation, path and body
    state: str = Field(max_length=16)
    response_status: int | None = Field(default=None)
    response_body: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: dt.datetime = timestamp_field(default_now=True)
    locked_at: dt.datetime = timestamp_field(nullable=False)  # when the running request took the key
    expires_at: dt.datetime = timestamp_field(nullable=False, index=True)
