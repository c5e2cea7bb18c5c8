"""Errors of the customer profile (messages from behavior.md part A §5 and §6.3)."""

from __future__ import annotations

from decabill.errors import BadRequest


class ProfileIncomplete(BadRequest):
    def __init__(self) -> None:
        super().__init__("Customer billing profile must be complete before ordering. Please complete your profile.")
