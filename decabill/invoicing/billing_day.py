"""One billing day run by hand (`decabill bill-day`, issue #19): what the periodic coordinator
`invoicing.bill_due_users` fans out over the queue, run here with `concurrency` units at a time, reporting
each customer done to `on_progress` — so an operator sees customers done / total, invoices per second and
an ETA, and a summary at the end.

Every customer goes through the billing day's own unit (`billing.bill_user`), so a run by hand and the
scheduled run (or two runs by hand) at the same moment bill each customer once: the loser of the user's
billing lock answers `busy`, a later one `nothing`. The PDFs and mails follow as their own jobs
(`decabill.invoicing.rendering`): on Redis the workers make them; without Redis this process does, and
`run` waits for them. `dry_run` only counts who is due.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from decabill.invoicing import billing, rendering
from decabill.tenancy import bound_tenant

log = structlog.get_logger("decabill.invoicing")


@dataclass
class BillingDaySummary:
    tenant: str
    due: int = 0
    outcomes: Counter = field(default_factory=Counter)  # billed | nothing | busy | failed
    invoices: int = 0
    seconds: float = 0.0
    documents_pending: int = 0

    @property
    def done(self) -> int:
        return sum(self.outcomes.values())


async def due_customers(tenant: str) -> list[uuid.UUID]:
    with bound_tenant(tenant):
        return await billing.users_due(0)


async def run(tenant: str, *, concurrency: int, on_progress: Callable[[BillingDaySummary], None] | None = None,
              dry_run: bool = False) -> BillingDaySummary:
    """Bill every customer of `tenant` who is due today (see the module docstring)."""
    summary = BillingDaySummary(tenant)
    started = time.perf_counter()
    due = await due_customers(tenant)
    summary.due = len(due)
    if dry_run or not due:
        return summary
    pending = iter(due)

    async def worker() -> None:
        for user_id in pending:  # one shared iterator: each customer is taken by one worker
            with bound_tenant(tenant):
                try:
                    result = await billing.bill_user(user_id)
                    summary.outcomes[result.status] += 1
                    summary.invoices += len(result.invoices)
                except Exception as exc:  # noqa: BLE001 - one customer's failure must not stop the day
                    log.error("invoicing.bill_day_failed", error=str(exc), error_type=type(exc).__name__)
                    summary.outcomes["failed"] += 1
            summary.seconds = time.perf_counter() - started
            if on_progress is not None:
                on_progress(summary)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    summary.seconds = time.perf_counter() - started
    return summary


async def documents_pending(tenant: str) -> int:
    """The tenant's issued invoices whose PDF and mail are still to come."""
    with bound_tenant(tenant):
        return await rendering.unfinished()
