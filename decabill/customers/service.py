"""The caller's billing profile (behavior.md part A §5).

* Upsert: the first save creates the profile, later saves change only the fields sent.
* Validation beyond the spec's types: column lengths, no NUL characters, `country` an ISO 3166-1
  alpha-2 code (pycountry; stored upper case), `email` a syntactically valid address (email-validator,
  no DNS lookup; stored normalised). The contract has no VAT id field, so there is none to check.
* "Complete" = first and last name, email, address line 1, postal code, city and country all have
  non-blank content; ordering requires it.
"""

from __future__ import annotations

import uuid
from typing import Any

import pycountry
from email_validator import EmailNotValidError, validate_email

from decabill import db
from decabill.validation import text
from decabill.customers.errors import ProfileIncomplete
from decabill.customers.repository import CustomerProfileRepository
from decabill.errors import BadRequest
from decabill.identity.principal import Principal
from decabill.webhooks import service as webhooks
from models.customers import CustomerProfile

# attribute -> (label used in messages, column width)
FIELDS: dict[str, tuple[str, int]] = {
    "first_name": ("First name", 255),
    "last_name": ("Last name", 255),
    "company": ("Company", 255),
    "address_line1": ("Address line 1", 255),
    "address_line2": ("Address line 2", 255),
    "postal_code": ("Postal code", 30),
    "city": ("City", 255),
    "state": ("State", 255),
    "country": ("Country", 2),
    "email": ("Email", 255),
    "phone": ("Phone", 50),
}


def _country(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise BadRequest("Country must be ISO 3166-1 alpha-2")
    return code


def _email(value: str) -> str:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise BadRequest("Email must be valid") from None


def validate_profile_fields(fields: dict[str, Any]) -> dict[str, str]:
    """Check and normalise the given fields; every problem is reported, joined with "; "."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown customer profile fields: {sorted(unknown)}")
    cleaned: dict[str, str] = {}
    problems: list[str] = []
    for name, value in fields.items():
        if value is None:
            continue
        label, width = FIELDS[name]
        try:
            value = text(value, label, max_length=width)
            if name == "country":
                value = _country(value)
            elif name == "email":
                value = _email(value)
            cleaned[name] = value
        except BadRequest as exc:
            problems.append(exc.message)
    if problems:
        raise BadRequest("; ".join(problems))
    return cleaned


async def find_profile(user_id: uuid.UUID, *, lock: bool = False) -> CustomerProfile | None:
    """The user's profile in the current tenant (joins the caller's transaction)."""
    async with db.transaction() as session:
        return await CustomerProfileRepository(session).of_user(user_id, for_update=lock)


async def get_own_profile(principal: Principal) -> CustomerProfile | None:
    user_id = principal.require_user_id()
    async with db.transaction():
        return await find_profile(user_id)


async def update_own_profile(principal: Principal, **fields: Any) -> CustomerProfile:
    user_id = principal.require_user_id()
    changes = validate_profile_fields(fields)
    async with db.transaction() as session:
        profiles = CustomerProfileRepository(session)
        # Two first saves at once: exactly one insert goes through, both then update that row.
        created = await profiles.ensure_exists(user_id)
        profile = await profiles.of_user(user_id, for_update=True)
        assert profile is not None
        for name, value in changes.items():
            setattr(profile, name, value)
        profile.touch()
        if created:
            await webhooks.record(session, principal.tenant, "customer.created", profile)
    return profile


async def require_complete_profile(user_id: uuid.UUID, *, lock: bool = False) -> CustomerProfile:
    """Inside an open transaction: the user's profile, or 400 when it is missing or incomplete. `lock=True`
    holds the profile row until commit (deleting a profile takes the same lock, then looks for subscriptions)."""
    profile = await find_profile(user_id, lock=lock)
    if profile is None or not profile.is_complete:
        raise ProfileIncomplete()
    return profile
