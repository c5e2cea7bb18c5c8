"""Admin customer profiles (behavior.md part B §7.6): browse, read, create for a user, change, delete.

* The field rules are the customer's own (`decabill.customers.service.validate_profile_fields`: widths,
  ISO 3166-1 alpha-2 country, valid email); `isComplete` is the profile's completeness rule.
* One profile per user: creating a second one is 400, also when two admins create it at the same moment
  (the UNIQUE user_id decides, the loser gets the 400).
* Deleting is refused (400) while the owner has any invoice or any subscription: invoices keep the buyer
  they were issued to, but a customer with running or past business keeps the profile it is billed under.
* Each change is recorded in the billing audit trail (`customer_profile.*`, no invoice) with the names of
  the fields that changed — not their values: the trail is append-only and must not become a second,
  undeletable copy of personal data.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import exists, func, select

from decabill import db
from decabill.admin.errors import (
    CustomerProfileExists,
    CustomerProfileNotFound,
    ProfileOwnerHasInvoices,
    ProfileOwnerHasSubscriptions,
)
from decabill.admin.views import Page, ProfileView
from decabill.customers.service import find_profile, validate_profile_fields
from decabill.identity.principal import Principal
from decabill.identity.service import UserNotFound
from decabill.invoicing import states
from decabill.invoicing.states import Actor
from decabill.numbering import insert_if_missing
from decabill.tenancy import current_tenant
from models.customers import CustomerProfile
from models.identity import User
from models.invoicing import Invoice
from models.subscriptions import Subscription


def _with_email():
    return (select(CustomerProfile, User.email)
            .join(User, User.id == CustomerProfile.user_id)
            .where(CustomerProfile.tenant_id == current_tenant()))


async def _profile(profile_id: uuid.UUID, *, lock: bool = False) -> ProfileView:
    query = _with_email().where(CustomerProfile.id == profile_id)
    row = (await db.current_session().execute(db.for_update(query) if lock else query)).first()
    if row is None:
        raise CustomerProfileNotFound(profile_id)
    return ProfileView(row[0], row[1])


async def _audit(profile: CustomerProfile, process: str, message: str, principal: Principal, fields: list[str]) -> None:
    await states.audit_unbound(db.current_session(), user_id=profile.user_id, process=process, message=message,
                               actor=Actor.of(principal),
                               context={"customerProfileId": profile.id, "fields": sorted(fields)})


async def list_profiles(principal: Principal, limit: int, offset: int) -> Page:
    async with db.transaction() as session:
        total = (await session.execute(
            select(func.count(CustomerProfile.id)).where(CustomerProfile.tenant_id == current_tenant()))).scalar_one()
        query = _with_email().order_by(CustomerProfile.updated_at.desc(), CustomerProfile.id)
        rows = (await session.execute(db.page(query, limit, offset))).all()
    return Page([ProfileView(profile, email) for profile, email in rows], int(total), limit, offset)


async def get_profile(principal: Principal, profile_id: uuid.UUID) -> ProfileView:
    async with db.transaction():
        return await _profile(profile_id)


async def create_profile(principal: Principal, user_id: uuid.UUID, **fields: Any) -> CustomerProfile:
    changes = validate_profile_fields(fields)
    async with db.transaction() as session:
        user = (await session.execute(db.scoped(User).where(User.id == user_id))).scalar_one_or_none()
        if user is None:
            raise UserNotFound()
        if await find_profile(user_id) is not None:
            raise CustomerProfileExists()
        now, new_id = db.utcnow(), uuid.uuid4()
        # INSERT ... ON CONFLICT DO NOTHING: of two concurrent creations exactly one inserts; the other
        # finds someone else's row below and answers 400 like the check above.
        await insert_if_missing(session, CustomerProfile.__table__,  # type: ignore[attr-defined]
                                {"id": new_id, "tenant_id": current_tenant(), "user_id": user_id,
                                 "created_at": now, "updated_at": now, **changes}, ["user_id"])
        profile = await find_profile(user_id)
        if profile is None or profile.id != new_id:
            raise CustomerProfileExists()
        await _audit(profile, "customer_profile.admin_create", "Admin created customer profile", principal,
                     list(changes))
    return profile


async def update_profile(principal: Principal, profile_id: uuid.UUID, **fields: Any) -> CustomerProfile:
    changes = validate_profile_fields(fields)
    async with db.transaction():
        profile = (await _profile(profile_id, lock=True)).profile
        changed = [name for name, value in changes.items() if getattr(profile, name) != value]
        for name, value in changes.items():
            setattr(profile, name, value)
        profile.touch()
        await _audit(profile, "customer_profile.admin_update", "Admin updated customer profile", principal, changed)
    return profile


async def delete_profile(principal: Principal, profile_id: uuid.UUID) -> None:
    async with db.transaction() as session:
        profile = (await _profile(profile_id, lock=True)).profile
        tenant, owner = current_tenant(), profile.user_id
        async def has(model) -> bool:
            query = select(exists().where(model.tenant_id == tenant, model.user_id == owner))
            return bool((await session.execute(query)).scalar())

        if await has(Invoice):
            raise ProfileOwnerHasInvoices()
        if await has(Subscription):
            raise ProfileOwnerHasSubscriptions()
        await _audit(profile, "customer_profile.admin_delete", "Admin deleted customer profile", principal, [])
        await session.delete(profile)
