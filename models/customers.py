"""Customer billing profiles: the name and address a user is invoiced under (behavior.md part A §5).

One profile per user. It goes with its user (ON DELETE CASCADE): the invoices that were issued to it keep
their own copy of the address (invoicing issue), so nothing legal depends on this row surviving.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

import datetime as dt

from sqlalchemy import Column, ForeignKey, UniqueConstraint
from sqlmodel import Field

from models.base import Timestamped, id_field, tenant_field, timestamp_field


class CustomerProfile(Timestamped, table=True):
    __tablename__ = "customer_profiles"
    __table_args__ = (UniqueConstraint("user_id", name="uq_customer_profiles_user"),)

    id: uuid.UUID = id_field()
    tenant_id: str = tenant_field()
    user_id: uuid.UUID = Field(sa_column=Column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False))
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)
    company: str | None = Field(default=None, max_length=255)
    address_line1: str | None = Field(default=None, max_length=255)
    address_line2: str | None = Field(default=None, max_length=255)
    postal_code: str | None = Field(default=None, max_length=30)
    city: str | None = Field(default=None, max_length=255)
    state: str | None = Field(default=None, max_length=255)
    country: str | None = Field(default=None, max_length=2)  # ISO 3166-1 alpha-2, upper case
    email: str | None = Field(default=None, max_length=255)
    phone: str | None = Field(default=None, max_length=50)
    stripe_customer_id: str | None = Field(default=None, max_length=255)  # set by the payments area (D15)
    # EU VAT (decabill/taxes): the VAT ID with its country prefix, what VIES said and its proof
    vat_id: str | None = Field(default=None, max_length=32)
    vat_id_status: str | None = Field(default=None, max_length=16)  # valid | invalid | pending
    vat_id_checked_at: dt.datetime | None = timestamp_field()
    vat_id_consultation_number: str | None = Field(default=None, max_length=64)  # VIES requestIdentifier
    vat_id_recheck_at: dt.datetime | None = timestamp_field()  # next VIES attempt while pending
    vat_id_check_attempts: int = Field(default=0)

    REQUIRED_FOR_ORDERING: ClassVar[tuple[str, ...]] = ("first_name", "last_name", "email", "address_line1", "postal_code", "city", "country")

    @property
    def is_complete(self) -> bool:
        """Every field ordering and invoicing need has non-blank content (company, line 2, state, phone optional)."""
        return all(isinstance(getattr(self, name), str) and getattr(self, name).strip()
                   for name in self.REQUIRED_FOR_ORDERING)
