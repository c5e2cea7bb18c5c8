"""Errors of the taxes domain."""

from __future__ import annotations

from decabill.errors import BadRequest


class InvalidVatId(BadRequest):
    def __init__(self, reason: str) -> None:
        super().__init__(f"VAT ID is not valid: {reason}")


class VatIdNeedsCountry(BadRequest):
    def __init__(self) -> None:
        super().__init__("VAT ID needs the profile's country (an EU member state)")
