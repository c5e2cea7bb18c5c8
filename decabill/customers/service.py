"""The caller's billing profile (behavior.md part A §5).

* Upsert: the first save creates the profile, later saves change only the fields sent.
* Validation beyond the spec's types: column lengths, no NUL characters, `country` an ISO 3166-1
  alpha-2 code (pycountry; stored upper case), `email` a syntactically valid address (email-validator,
  no DNS lookup; stored normalised).
* `vatId` (EU VAT, decabill/taxes): an empty string removes it; otherwise it is format-checked for the
  profile's country (the one sent, else the stored one) and verified with VIES before the profile is saved.
  VIES unavailable → saved as `pending`, re-checked by `customers.recheck_vat_ids` with backoff
  (VAT_RECHECK_BACKOFF: 5 minutes doubling up to a day); invalid → 400 and nothing is saved.
* "Complete" = first and last name, email, address line 1, postal code, city and country all have
  non-blank content; ordering requires it.
"""

from __future__ import annotations

import datetime as dt
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
from decabill.taxes import service as taxes
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


VAT_RECHECK_FIRST = dt.timedelta(minutes=5)
VAT_RECHECK_LONGEST = dt.timedelta(days=1)


def vat_recheck_delay(attempts: int) -> dt.timedelta:
    """Backoff of the pending re-check: 5 minutes, doubling per failed attempt, at most a day."""
    return min(VAT_RECHECK_FIRST * (2 ** max(attempts, 0)), VAT_RECHECK_LONGEST)


def _vat_fields(check: taxes.VatIdCheck | None) -> dict[str, Any]:
    if check is None:
        return {"vat_id": None, "vat_id_status": None, "vat_id_checked_at": None, "vat_id_consultation_number": None,
                "vat_id_recheck_at": None, "vat_id_check_attempts": 0}
    pending = check.status == taxes.VatIdStatus.PENDING
    return {"vat_id": check.vat_id, "vat_id_status": check.status, "vat_id_checked_at": check.checked_at,
            "vat_id_consultation_number": check.consultation_number, "vat_id_check_attempts": 0,
            "vat_id_recheck_at": check.checked_at + vat_recheck_delay(0) if pending else None}


async def checked_vat_id(raw: Any, country: str | None) -> dict[str, Any]:
    """The VAT ID columns for a `vatId` as sent ({} when not sent): format (400), then VIES (400 when invalid;
    pending when VIES cannot answer). Called outside the transaction that saves them: VIES may be slow."""
    if raw is None:
        return {}
    raw = text(raw, "VAT ID", max_length=32).strip()
    if not raw:
        return _vat_fields(None)
    return _vat_fields(await taxes.verify(taxes.normalise_vat_id(country, raw)))


async def country_after(user_id: uuid.UUID, changes: dict[str, Any]) -> str | None:
    """The profile's country once `changes` are applied."""
    if changes.get("country"):
        return changes["country"]
    profile = await find_profile(user_id)
    return profile.country if profile else None


async def find_profile(user_id: uuid.UUID, *, lock: bool = False) -> CustomerProfile | None:
    """The user's profile in the current tenant (joins the caller's transaction)."""
    async with db.transaction() as session:
        return await CustomerProfileRepository(session).of_user(user_id, for_update=lock)


async def profiles_of(user_ids: list[uuid.UUID]) -> dict[uuid.UUID, CustomerProfile]:
    """The users' profiles in the current tenant, by user (joins the caller's transaction)."""
    async with db.transaction() as session:
        return await CustomerProfileRepository(session).of_users(user_ids)


async def get_own_profile(principal: Principal) -> CustomerProfile | None:
    user_id = principal.require_user_id()
    async with db.transaction():
        return await find_profile(user_id)


async def update_own_profile(principal: Principal, **fields: Any) -> CustomerProfile:
    user_id = principal.require_user_id()
    vat_id = fields.pop("vat_id", None)
    changes: dict[str, Any] = validate_profile_fields(fields)
    if vat_id is not None:
        changes |= await checked_vat_id(vat_id, await country_after(user_id, changes))
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


# --- the pending VAT ID re-check (customers.recheck_vat_ids) ----------------------------------------


async def pending_vat_ids(batch_size: int, *, now: dt.datetime | None = None) -> list[uuid.UUID]:
    async with db.transaction() as session:
        return await CustomerProfileRepository(session).vat_recheck_due(now or db.utcnow(), batch_size)


async def recheck_vat_id(profile_id: uuid.UUID) -> str:
    """Ask VIES again about a pending VAT ID: `valid` / `invalid`, or `pending` with the next attempt later."""
    async with db.transaction() as session:
        profile = await CustomerProfileRepository(session).get(profile_id)
        if profile is None or profile.vat_id_status != taxes.VatIdStatus.PENDING or not profile.vat_id:
            return "not_pending"
        vat_id, attempts = profile.vat_id, profile.vat_id_check_attempts
    check = await taxes.recheck(vat_id)
    async with db.transaction() as session:
        profile = await CustomerProfileRepository(session).get(profile_id, for_update=True)
        if profile is None or profile.vat_id != vat_id or profile.vat_id_status != taxes.VatIdStatus.PENDING:
            return "changed"  # edited meanwhile: the new value has its own check
        profile.vat_id_status, profile.vat_id_checked_at = check.status, check.checked_at
        profile.vat_id_consultation_number = check.consultation_number
        if check.status == taxes.VatIdStatus.PENDING:
            profile.vat_id_check_attempts = attempts + 1
            profile.vat_id_recheck_at = check.checked_at + vat_recheck_delay(attempts + 1)
        else:
            profile.vat_id_recheck_at = None
        profile.touch()
        return check.status
