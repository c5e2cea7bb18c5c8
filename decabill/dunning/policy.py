"""The dunning policy: ordered steps "N days after the due date → action", checked here.

Rules: 1–20 steps (none when the policy is off); `days` whole numbers from 1 to 3650, strictly increasing;
actions `remind`, `suspend`, `terminate`; at most one `terminate`, and it is the last step.

The default (a tenant that never saved a policy): remind at 3 and 10 days, suspend at 14, terminate at
45 — switched **off**, so that upgrading an installation never suspends or terminates anybody for invoices
that were overdue before its operator chose to (turning it on is one `PUT` with `enabled: true`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from decabill.dunning.errors import InvalidDunningPolicy
from decabill.dunning.repository import DunningPolicyRepository
from models.dunning import DunningAction

MAX_STEPS = 20
MAX_DAYS = 3650
#: steps whose invoice keeps the customer suspended while unpaid
SUSPENDING = (DunningAction.SUSPEND, DunningAction.TERMINATE)


@dataclass(frozen=True)
class Step:
    days: int
    action: str


@dataclass(frozen=True)
class Policy:
    enabled: bool
    steps: tuple[Step, ...]
    bill_while_suspended: bool = True
    is_default: bool = False
    updated_at: dt.datetime | None = None

    def as_json(self) -> list[dict[str, Any]]:
        return [{"days": step.days, "action": step.action} for step in self.steps]


DEFAULT = Policy(enabled=False, steps=(Step(3, DunningAction.REMIND), Step(10, DunningAction.REMIND),
                                       Step(14, DunningAction.SUSPEND), Step(45, DunningAction.TERMINATE)),
                 bill_while_suspended=True, is_default=True)


def parse_steps(raw: Any, *, enabled: bool) -> tuple[Step, ...]:
    """The steps of a submitted policy, or 400 naming every problem."""
    if not isinstance(raw, list):
        raise InvalidDunningPolicy(["steps must be a list"])
    problems: list[str] = []
    if enabled and not raw:
        problems.append("an enabled policy needs at least one step")
    if len(raw) > MAX_STEPS:
        problems.append(f"at most {MAX_STEPS} steps")
    steps: list[Step] = []
    for number, entry in enumerate(raw, start=1):
        days = entry.get("days") if isinstance(entry, dict) else None
        action = entry.get("action") if isinstance(entry, dict) else None
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            problems.append(f"step {number}: days must be a whole number from 1 to {MAX_DAYS}")
            continue
        if action not in DunningAction.ALL:
            problems.append(f"step {number}: action must be one of {', '.join(DunningAction.ALL)}")
            continue
        if steps and days <= steps[-1].days:
            problems.append(f"step {number}: days must be greater than the previous step's ({steps[-1].days})")
        steps.append(Step(days, action))
    terminates = [i for i, step in enumerate(steps) if step.action == DunningAction.TERMINATE]
    if len(terminates) > 1:
        problems.append("at most one terminate step")
    elif terminates and terminates[0] != len(steps) - 1:
        problems.append("terminate must be the last step")
    if problems:
        raise InvalidDunningPolicy(problems)
    return tuple(steps)


def from_row(enabled: bool, steps: list[dict[str, Any]], bill_while_suspended: bool,
             updated_at: dt.datetime | None) -> Policy:
    return Policy(enabled=enabled, steps=tuple(Step(int(s["days"]), str(s["action"])) for s in steps),
                  bill_while_suspended=bill_while_suspended, updated_at=updated_at)


async def current_policy(session: AsyncSession) -> Policy:
    """The tenant's policy, or the default when it never saved one."""
    row = await DunningPolicyRepository(session).current()
    if row is None:
        return DEFAULT
    return from_row(row.enabled, row.steps, row.bill_while_suspended, row.updated_at)
