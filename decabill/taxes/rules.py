"""Which VAT rule an invoice falls under, and the rates and EN 16931 category that follow from it.

From the seller's country (BILLING_ISSUER_COUNTRY) and the buyer's profile (country, postal code, VAT ID and
its VIES status), on the invoice date:

* `domestic` — buyer in the seller's country (or a seller outside the EU, for whom EU rules do not apply):
  BILLING_TAX_RATE_STANDARD / _REDUCED, category `S` — exactly what Decabill always did;
* `reverse_charge` — buyer in another member state with a VAT ID of that state that VIES found valid: 0 %,
  category `AE`, exemption reason "Reverse charge" (Art. 196 of Directive 2006/112/EC);
* `oss` — buyer in another member state without a valid VAT ID (a consumer): the buyer country's rate from
  the rates table when BILLING_OSS_ENABLED, otherwise the seller's rates (below the EUR 10 000 threshold of
  Art. 59c the seller may stay with its own VAT; the operator decides) — category `S` either way;
* `outside_eu` — buyer outside the EU VAT area: 0 %, category `O` (services not subject to EU VAT, place of
  supply at the customer, Art. 44). Territories of member states outside the VAT area (Art. 6) are
  recognised by postal code: Canary Islands, Ceuta, Melilla, Åland, Büsingen, Heligoland, Livigno,
  Campione d'Italia, Mount Athos. The French overseas departments have their own ISO codes and are outside.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from decabill.documents.model import EXEMPT, EXEMPTIONS as EXEMPTIONS, NOT_SUBJECT, REVERSE_CHARGE, STANDARD_RATED, ZERO_RATED
from decabill.taxes.rates import EU_MEMBER_STATES, in_force


class TaxRule:
    DOMESTIC = "domestic"
    REVERSE_CHARGE = "reverse_charge"
    OSS = "oss"
    OUTSIDE_EU = "outside_eu"


CATEGORY_CODES = (STANDARD_RATED, REVERSE_CHARGE, NOT_SUBJECT, ZERO_RATED, EXEMPT)

# (country, postal code prefixes) of territories outside the EU VAT area (Art. 6 Directive 2006/112/EC).
SPECIAL_TERRITORIES: dict[str, tuple[str, ...]] = {
    "ES": ("35", "38", "51", "52"),  # Canary Islands (Las Palmas, Santa Cruz de Tenerife), Ceuta, Melilla
    "FI": ("22",),  # Åland
    "DE": ("78266", "27498"),  # Büsingen am Hochrhein, Heligoland
    "IT": ("23041", "22061"),  # Livigno, Campione d'Italia
    "GR": ("63086",),  # Mount Athos
}

VAT_PREFIX = {"GR": "EL"}  # VIES and VAT IDs spell Greece EL


def vat_prefix(country: str) -> str:
    return VAT_PREFIX.get(country, country)


def in_vat_area(country: str | None, postal_code: str | None) -> bool:
    if not country or country not in EU_MEMBER_STATES:
        return False
    code = "".join((postal_code or "").split()).upper()
    return not any(code.startswith(prefix) for prefix in SPECIAL_TERRITORIES.get(country, ()))


@dataclass(frozen=True)
class Buyer:
    country: str | None
    postal_code: str | None = None
    vat_id: str | None = None
    vat_id_status: str | None = None  # valid | invalid | pending | None
    vat_id_checked_at: dt.datetime | None = None
    vat_id_consultation_number: str | None = None

    @property
    def has_valid_vat_id(self) -> bool:
        return bool(self.vat_id and self.vat_id_status == "valid" and self.country
                    and self.vat_id.startswith(vat_prefix(self.country)))


@dataclass(frozen=True)
class Decision:
    """The rule and what follows from it; `rates` maps the line kinds (standard, reduced) to percents."""

    rule: str
    category_code: str
    rates: dict[str, Decimal]
    tax_country: str  # whose rates apply (the seller's, or the buyer's under OSS)
    buyer_country: str | None
    vat_id: str | None = None
    vat_id_checked_at: dt.datetime | None = None
    vat_id_consultation_number: str | None = None
    rates_source: str = field(default="")

    def rate(self, kind: str) -> Decimal:
        return self.rates.get(kind, self.rates["standard"])


def category_rate(category_code: str, kind: str, domestic: dict[str, Decimal]) -> Decimal:
    """The rate of a line whose category an admin set explicitly: standard rated at the seller's rate of its
    kind, every other category at 0 %."""
    return domestic.get(kind, domestic["standard"]) if category_code == STANDARD_RATED else Decimal(0)


def determine(*, seller_country: str, buyer: Buyer, day: dt.date, domestic: dict[str, Decimal],
              oss_enabled: bool) -> Decision:
    """The rule for an invoice to `buyer` dated `day`; `domestic` are the seller's own rates per kind."""
    seller_country = (seller_country or "").upper()
    country = (buyer.country or "").upper() or None
    zero = {"standard": Decimal(0), "reduced": Decimal(0)}
    # No country yet (a draft for a profile still incomplete; issuing needs one): rated as domestic for now.
    if seller_country not in EU_MEMBER_STATES or country is None or (
            country == seller_country and in_vat_area(country, buyer.postal_code)):
        return Decision(TaxRule.DOMESTIC, STANDARD_RATED, dict(domestic), seller_country, country,
                        rates_source="BILLING_TAX_RATE_STANDARD / BILLING_TAX_RATE_REDUCED")
    if not in_vat_area(country, buyer.postal_code):
        # No VAT ID on an invoice outside the scope of VAT (EN 16931 BR-O-02).
        return Decision(TaxRule.OUTSIDE_EU, NOT_SUBJECT, zero, seller_country, country)
    assert country is not None
    if buyer.has_valid_vat_id:
        return Decision(TaxRule.REVERSE_CHARGE, REVERSE_CHARGE, zero, seller_country, country, vat_id=buyer.vat_id,
                        vat_id_checked_at=buyer.vat_id_checked_at,
                        vat_id_consultation_number=buyer.vat_id_consultation_number)
    if not oss_enabled:
        return Decision(TaxRule.OSS, STANDARD_RATED, dict(domestic), seller_country, country,
                        rates_source="BILLING_OSS_ENABLED=false: the seller's rates")
    entry = in_force(country, day)
    return Decision(TaxRule.OSS, STANDARD_RATED, {"standard": entry.rate("standard"), "reduced": entry.rate("reduced")},
                    country, country, rates_source=f"{country} from {entry.effective_from.isoformat()}: {entry.source}")


def rule_label(rule: str | None, tax_country: str | None) -> str | None:
    """How an invoice names its rule (PDF)."""
    labels = {  # short: printed beside the invoice number; the legal note says the rest
        TaxRule.DOMESTIC: f"Domestic ({tax_country})",
        TaxRule.REVERSE_CHARGE: "Reverse charge",
        TaxRule.OSS: f"OSS ({tax_country})",
        TaxRule.OUTSIDE_EU: "Outside the EU",
    }
    return labels.get(rule or "")


def legal_note(rule: str | None, buyer_vat_id: str | None) -> str | None:
    """The note an invoice under `rule` must carry (Art. 226 (11a) Directive 2006/112/EC: "Reverse charge")."""
    if rule == TaxRule.REVERSE_CHARGE:
        return (f"Reverse charge: VAT to be accounted for by the recipient (Article 196 Directive 2006/112/EC). "
                f"Customer VAT ID: {buyer_vat_id}.")
    if rule == TaxRule.OUTSIDE_EU:
        return "Not subject to EU VAT: the place of supply is outside the EU (Article 44 Directive 2006/112/EC)."
    return None
