"""One billing day run by hand (`decabill bill-day`, issue #19): what the periodic coordinator
`invoicing.bill_due_users` fans out over the queue, run here with `concurrency` units at a time, reporting
each customer done to `on_progress` — so an operator sees customers done / total, invoices per second and
an ETA, and a summary at the end.

Every customer goes through the billing day's own units — the slices of the user ids, each billed batch by
batch (`billing.due_batches`, `billing.bill_users`) — so a run by hand and the scheduled run (or two runs by
hand) at the same moment bill each customer once: the loser of the user's billing lock answers `busy`, a
later one `nothing`. The PDFs and mails follow as their own jobs
(`decabill.invoicing.rendering`): on Redis the workers make them; without Redis this process does — the
jobs its own issuing sent, then `finish_documents`: every task no live process works on (another run's
left over, a killed run's abandoned claims), so a run by hand ends with every PDF made. `dry_run` only
counts who is due.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from decabill.config import get_settings

from decabill.invoicing import billing, rendering
from decabill.invoicing.errors import DocumentsNotRendered
from decabill.tenancy import bound_tenant
from models.invoicing import DocumentStatus

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
              dry_run: bool = False, batch_size: int | None = None) -> BillingDaySummary:
    """Bill every customer of `tenant` who is due today (see the module docstring)."""
    summary = BillingDaySummary(tenant)
    started = time.perf_counter()
    due = await due_customers(tenant)
    summary.due = len(due)
    del due  # only counted: each slice reads its own customers a page at a time
    if dry_run or not summary.due:
        return summary
    size = batch_size or get_settings().open_position_invoice_batch_size
    slices = iter(billing.id_slices())

    async def worker() -> None:
        for lowest, below in slices:  # one shared iterator: each slice is taken by one worker
            with bound_tenant(tenant):
                async for batch in billing.due_batches(size, lowest=lowest, below=below):
                    outcomes = await billing.bill_users(batch)  # a customer's failure is counted, not raised
                    summary.invoices += outcomes.pop("invoices", 0)
                    summary.outcomes.update(outcomes)
                    summary.seconds = time.perf_counter() - started
                    if on_progress is not None:
                        on_progress(summary)

    async with rendering.issuing():
        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    summary.seconds = time.perf_counter() - started
    return summary


async def finish_documents(tenant: str) -> int:
    """Render (and mail) every task of `tenant` that no live process works on — pending of any age, or
    abandoned while rendering — a batch at a time until none is left; the number rendered. Raises
    `DocumentsNotRendered` when a whole batch only failed (rendering is broken: going on would only use up
    the attempts)."""
    rendered = 0
    await rendering.after_issuing()
    with bound_tenant(tenant):
        while statuses := await rendering.render_batch():
            done = sum(1 for status in statuses.values() if status == DocumentStatus.RENDERED)
            if not done:
                raise DocumentsNotRendered(len(statuses), await rendering.last_error(list(statuses)))
            rendered += done
    return rendered


async def documents_pending(tenant: str) -> int:
    """The tenant's issued invoices whose PDF and mail are still to come."""
    with bound_tenant(tenant):
        return await rendering.unfinished()
