"""Users of a tenant (users and keycloak modes)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import UniqueConstraint
from sqlmodel import Field

from models.base import Timestamped, id_field, tenant_field, timestamp_field


class User(Timestamped, table=True):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "email", name="uq_users_tenant_email"),
        UniqueConstraint("tenant_id", "keycloak_sub", name="uq_users_tenant_keycloak_sub"),
    )

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    email: str = Field(max_length=255)  # stored lower-case
    password_hash: str | None = Field(default=None, max_length=255)  # None for keycloak-only users
    role: str = Field(default="user", max_length=32)
    email_confirmed_at: dt.datetime | None = timestamp_field()
    locked_at: dt.datetime | None = timestamp_field()
    email_confirmation_token: str | None = Field(default=None, max_length=255)  # bcrypt hash of the code
    password_reset_token: str | None = Field(default=None, max_length=255)  # bcrypt hash of the code
    password_reset_token_expires_at: dt.datetime | None = timestamp_field()
    password_reset_failed_attempts: int = Field(default=0)
    keycloak_sub: str | None = Field(default=None, max_length=255)
    billing_day_of_month: int | None = Field(default=None)
    # Carried in every users-mode token; raised when the password, the lock or the role changes, which ends
    # every token issued before (decabill/identity/credentials.py).
    credential_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_locked(self) -> bool:
        return self.locked_at is not None

    @property
    def effective_billing_day(self) -> int:
        """The day of month this user's open positions are invoiced (registration day, capped at 28)."""
        return self.billing_day_of_month or min(self.created_at.day, 28)
