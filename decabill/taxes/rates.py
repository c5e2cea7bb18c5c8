"""The EU member states' VAT rates with the day each took effect (`rates.json`, shipped with the package).

BILLING_TAX_RATES_FILE names a JSON file of the same shape that replaces the packaged table (an operator
whose accountant knows of a change before a release does). The rate of an invoice is the entry in force on
its date: the last entry whose `from` is on or before that day. A state without a reduced rate (`null`)
charges its standard rate on reduced lines.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path

from decabill.config import get_settings

EU_MEMBER_STATES = frozenset({
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU",
    "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
})


@dataclass(frozen=True)
class RateEntry:
    effective_from: dt.date
    standard: Decimal
    reduced: Decimal | None
    source: str

    def rate(self, kind: str) -> Decimal:
        return self.reduced if kind == "reduced" and self.reduced is not None else self.standard


class RatesTableError(ValueError):
    """The rates table is unreadable or has no entry for the date asked."""


def _entries(raw: dict) -> dict[str, tuple[RateEntry, ...]]:
    table: dict[str, tuple[RateEntry, ...]] = {}
    for country, entries in raw["countries"].items():
        parsed = [RateEntry(dt.date.fromisoformat(entry["from"]), Decimal(str(entry["standard"])),
                            None if entry.get("reduced") is None else Decimal(str(entry["reduced"])),
                            entry.get("source") or "") for entry in entries]
        table[country.upper()] = tuple(sorted(parsed, key=lambda entry: entry.effective_from))
    return table


@lru_cache(maxsize=4)
def _load(path: Path | None) -> dict[str, tuple[RateEntry, ...]]:
    try:
        text = path.read_text("utf-8") if path else resources.files(__package__).joinpath("rates.json").read_text("utf-8")
        return _entries(json.loads(text))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RatesTableError(f"VAT rates table {path or 'rates.json'} is unreadable: {exc}") from exc


def table() -> dict[str, tuple[RateEntry, ...]]:
    return _load(get_settings().billing_tax_rates_file)


def in_force(country: str, day: dt.date) -> RateEntry:
    """The entry of `country` in force on `day`."""
    entries = [entry for entry in table().get(country.upper(), ()) if entry.effective_from <= day]
    if not entries:
        raise RatesTableError(f"no VAT rate for {country} on {day.isoformat()}")
    return entries[-1]
