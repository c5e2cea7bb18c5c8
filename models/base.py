"""Column helpers shared by every table: ids, tenant ownership and UTC timestamps."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from models import types
from models.types import ExactDecimal, UTCDateTime


def id_field() -> Any:
    return Field(default_factory=uuid.uuid4, primary_key=True)


def tenant_field() -> Any:
    return Field(max_length=64, index=True, nullable=False)


def timestamp_field(*, nullable: bool = True, default_now: bool = False, index: bool = False) -> Any:
    if default_now:
        # Looked up at call time: "now" has one source (decabill.db.utcnow), which tests can move.
        return Field(default_factory=types.now, sa_type=UTCDateTime, nullable=False, index=index)
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def money_field(*, scale: int = 4, nullable: bool = True, default: Decimal | None = None) -> Any:
    return Field(default=default, sa_type=ExactDecimal(scale), nullable=nullable)


class Timestamped(SQLModel):
    created_at: dt.datetime = timestamp_field(default_now=True, index=True)
    updated_at: dt.datetime = timestamp_field(default_now=True)

    def touch(self) -> None:
        self.updated_at = types.now()


__all__ = ["Column", "id_field", "tenant_field", "timestamp_field", "money_field", "Timestamped"]
