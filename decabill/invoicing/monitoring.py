"""What the operator's metrics read of invoicing (decabill/observability/state.py): how far today's billing
day has got and which billing mails are stuck. Across every configured tenant; counts only, no ids.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from decabill import db
from decabill.config import get_settings
from decabill.invoicing import billing, mail
from decabill.invoicing.repository import InvoiceRepository, MailDeliveryRepository
from decabill.tenancy import bound_tenant
from models.invoicing import MailStatus

#: mail statuses that need attention (sent and skipped ones are history)
BACKLOG_STATUSES = (MailStatus.PENDING, MailStatus.SENDING, MailStatus.FAILED)
MAIL_KINDS = (mail.INVOICE_ISSUED, mail.INVOICE_VOIDED, mail.INVOICE_OVERDUE, mail.RENEWAL_REMINDER)


@dataclass(frozen=True)
class BillingDayProgress:
    due: int  # customers the billing run would invoice now (today's billing day, or a missed one)
    invoiced: int  # customers invoiced by the billing run since 00:00 UTC


async def billing_day_progress(now: dt.datetime | None = None) -> BillingDayProgress:
    now = now or db.utcnow()
    due = 0
    for tenant in get_settings().tenants:
        with bound_tenant(tenant):
            due += len(await billing.users_due(0, now=now))
    midnight = dt.datetime.combine(now.astimezone(dt.timezone.utc).date(), dt.time.min, tzinfo=dt.timezone.utc)
    async with db.transaction() as session:
        invoiced = await InvoiceRepository(session).customers_billed_by_run_since(midnight)
    return BillingDayProgress(due=due, invoiced=invoiced)


@dataclass(frozen=True)
class MailBacklog:
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, status) -> mails
    oldest_pending: dt.datetime | None = None


async def mail_backlog() -> MailBacklog:
    async with db.transaction() as session:
        counts, oldest = await MailDeliveryRepository(session).backlog(BACKLOG_STATUSES)
    return MailBacklog(counts, oldest)
