"""Errors of dunning."""

from __future__ import annotations

from decabill.errors import BadRequest, NotFound


class InvalidDunningPolicy(BadRequest):
    """Every problem of a submitted policy, joined with "; "."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class DunningCustomerNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("User not found")
