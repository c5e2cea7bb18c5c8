"""Admin customer profiles (behavior.md part B §7.6): browse, read, create for a user, change, delete.

* The field rules are the customer's own (`decabill.customers.service.validate_profile_fields`: widths,
  ISO 3166-1 alpha-2 country, valid email; `vatId` checked for format and with VIES by `checked_vat_id`);
  `isComplete` is the profile's completeness rule.
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

from sqlalchemy.ext.asyncio import AsyncSession

from decabill import db
from decabill.admin.errors import (
    CustomerProfileExists,
    CustomerProfileNotFound,
    ProfileOwnerHasInvoices,
    ProfileOwnerHasSubscriptions,
)
from decabill.admin.views import Page, ProfileView
from decabill.customers.repository import CustomerProfileRepository
from decabill.customers.service import checked_vat_id, country_after, validate_profile_fields
from decabill.identity.principal import Principal
from decabill.identity.service import UserNotFound, find_user
from decabill.invoicing import service as invoicing
from decabill.invoicing.repository import InvoiceRepository
from decabill.invoicing.service import Actor
from decabill.subscriptions.repository import SubscriptionRepository
from decabill.webhooks import service as webhooks
from models.customers import CustomerProfile


async def _profile(profiles: CustomerProfileRepository, profile_id: uuid.UUID, *, lock: bool = False) -> ProfileView:
    found = await profiles.with_email(profile_id, for_update=lock)
    if found is None:
        raise CustomerProfileNotFound(profile_id)
    return ProfileView(*found)


async def _audit(session: AsyncSession, profile: CustomerProfile, process: str, message: str, principal: Principal,
                 fields: list[str]) -> None:
    await invoicing.audit_unbound(session, user_id=profile.user_id, process=process, message=message,
                               actor=Actor.of(principal),
                               context={"customerProfileId": profile.id, "fields": sorted(fields)})


async def list_profiles(principal: Principal, limit: int, offset: int) -> Page:
    async with db.transaction() as session:
        rows, total = await CustomerProfileRepository(session).page_with_email(limit, offset)
    return Page([ProfileView(profile, email) for profile, email in rows], total, limit, offset)


async def get_profile(principal: Principal, profile_id: uuid.UUID) -> ProfileView:
    async with db.transaction() as session:
        return await _profile(CustomerProfileRepository(session), profile_id)


async def create_profile(principal: Principal, user_id: uuid.UUID, **fields: Any) -> CustomerProfile:
    vat_id = fields.pop("vat_id", None)
    changes: dict[str, Any] = validate_profile_fields(fields)
    changes |= await checked_vat_id(vat_id, changes.get("country"))
    async with db.transaction() as session:
        if await find_user(user_id) is None:
            raise UserNotFound()
        profiles = CustomerProfileRepository(session)
        if await profiles.of_user(user_id) is not None:
            raise CustomerProfileExists()
        # Of two concurrent creations exactly one inserts; the other answers 400 like the check above.
        if await profiles.create_once(user_id, changes) is None:
            raise CustomerProfileExists()
        profile = await profiles.of_user(user_id)
        assert profile is not None
        await _audit(session, profile, "customer_profile.admin_create", "Admin created customer profile", principal,
                     list(changes))
        await webhooks.record(session, principal.tenant, "customer.created", profile)
    return profile


async def update_profile(principal: Principal, profile_id: uuid.UUID, **fields: Any) -> CustomerProfile:
    vat_id = fields.pop("vat_id", None)
    changes: dict[str, Any] = validate_profile_fields(fields)
    if vat_id is not None:
        async with db.transaction() as session:
            owner = (await _profile(CustomerProfileRepository(session), profile_id)).profile.user_id
        changes |= await checked_vat_id(vat_id, await country_after(owner, changes))
    async with db.transaction() as session:
        profile = (await _profile(CustomerProfileRepository(session), profile_id, lock=True)).profile
        changed = [name for name, value in changes.items() if getattr(profile, name) != value]
        for name, value in changes.items():
            setattr(profile, name, value)
        profile.touch()
        await _audit(session, profile, "customer_profile.admin_update", "Admin updated customer profile", principal, changed)
    return profile


async def delete_profile(principal: Principal, profile_id: uuid.UUID) -> None:
    async with db.transaction() as session:
        profile = (await _profile(CustomerProfileRepository(session), profile_id, lock=True)).profile
        if await InvoiceRepository(session).any_of_user(profile.user_id):
            raise ProfileOwnerHasInvoices()
        if await SubscriptionRepository(session).any_of_user(profile.user_id):
            raise ProfileOwnerHasSubscriptions()
        await _audit(session, profile, "customer_profile.admin_delete", "Admin deleted customer profile", principal, [])
        await CustomerProfileRepository(session).remove(profile)
