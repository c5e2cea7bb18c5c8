"""The taxes domain's public face: VAT ID checks and the tax rule of an invoice (rules.py, rates.py).

A VAT ID is checked in two steps: its format for its country (python-stdnum's per-country check digits),
then VIES. Wrong format, another country than the profile's, or VIES saying "invalid" → 400. VIES not
answering → status `pending` (a job asks again later, with backoff). The proof of a valid check is VIES's
`requestIdentifier` (the consultation number) and the time of the check.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError

from decabill import db
from decabill.config import get_settings
from decabill.taxes import vies
from decabill.taxes.errors import InvalidVatId, VatIdNeedsCountry
from decabill.taxes.rates import EU_MEMBER_STATES, RatesTableError as RatesTableError
from decabill.taxes.rules import (
    CATEGORY_CODES as CATEGORY_CODES,
    EXEMPTIONS as EXEMPTIONS,
    NOT_SUBJECT as NOT_SUBJECT,
    REVERSE_CHARGE as REVERSE_CHARGE,
    STANDARD_RATED as STANDARD_RATED,
    Buyer as Buyer,
    Decision as Decision,
    TaxRule as TaxRule,
    category_rate,
    determine,
    legal_note as legal_note,
    rule_label as rule_label,
    vat_prefix,
)


class VatIdStatus:
    VALID = "valid"
    INVALID = "invalid"
    PENDING = "pending"


@dataclass(frozen=True)
class VatIdCheck:
    vat_id: str  # compact, with its country prefix: FR40303265045
    status: str
    checked_at: dt.datetime
    consultation_number: str | None = None


def normalise_vat_id(country: str | None, raw: str) -> str:
    """The compact VAT ID with its prefix, format-checked for the profile's country (400 otherwise)."""
    country = (country or "").upper()
    if country not in EU_MEMBER_STATES:
        raise VatIdNeedsCountry()
    number = "".join(character for character in raw.upper() if character.isalnum())
    prefix = vat_prefix(country)
    if not number[:2].isalpha():
        number = prefix + number
    if number[:2] != prefix:
        raise InvalidVatId(f"it belongs to another country than the profile's ({country})")
    try:
        return eu_vat.validate(number)
    except ValidationError as exc:
        raise InvalidVatId(f"wrong format for {country} ({exc.message})") from None


async def verify(vat_id: str) -> VatIdCheck:
    """Ask VIES about a normalised VAT ID: valid, or pending when VIES cannot answer now; invalid → 400."""
    answer = await vies.check(vat_id[:2], vat_id[2:])
    now = db.utcnow()
    if not answer.available:
        return VatIdCheck(vat_id, VatIdStatus.PENDING, now)
    if not answer.valid:
        raise InvalidVatId("VIES does not know it as an active VAT registration")
    return VatIdCheck(vat_id, VatIdStatus.VALID, answer.request_date or now, answer.request_identifier)


async def recheck(vat_id: str) -> VatIdCheck:
    """The pending re-check: like `verify`, but an invalid answer is a status, not an error."""
    try:
        return await verify(vat_id)
    except InvalidVatId:
        return VatIdCheck(vat_id, VatIdStatus.INVALID, db.utcnow())


def domestic_rates() -> dict:
    settings = get_settings()
    return {"standard": settings.billing_tax_rate_standard, "reduced": settings.billing_tax_rate_reduced}


def decide(buyer: Buyer, day: dt.date) -> Decision:
    """The rule for an invoice to `buyer` dated `day`, under this installation's settings."""
    settings = get_settings()
    return determine(seller_country=settings.billing_issuer_country, buyer=buyer, day=day,
                     domestic=domestic_rates(), oss_enabled=settings.billing_oss_enabled)


def explicit_rate(category_code: str, kind: str) -> object:
    """The rate of a line whose EN 16931 category an admin set explicitly."""
    return category_rate(category_code, kind, domestic_rates())
