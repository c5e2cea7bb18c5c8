"""Renewal reminders (behavior.md part B §9): an `active` subscription whose next renewal
(`next_billing_at`) is within REMINDER_DAYS days gets one "Upcoming subscription renewal" mail per
renewal. Skipped entirely while SMTP is not configured.

The coordinator selects up to REMINDER_SCHEDULER_BATCH_SIZE such subscriptions per tenant that have no
reminder for that renewal yet; the unit re-checks and records the mail under the key
`renewal-reminder:<subscription>:<renewal epoch ms>` — the same renewal is never reminded twice, however
often the job runs (the reference deduplicated only while a job was in flight). Recipient: the customer
profile's email (no fallback, as in the reference).
"""

from __future__ import annotations

import datetime as dt
import uuid

from decabill import db
from decabill.config import get_settings
from decabill.customers.service import find_profile
from decabill.invoicing import mail
from decabill.invoicing.repository import MailDeliveryRepository
from decabill.subscriptions.repository import SubscriptionRepository


def _window(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    return now, now + dt.timedelta(days=get_settings().reminder_days)


async def due_for_reminder(limit: int, *, now: dt.datetime | None = None) -> list[uuid.UUID]:
    if not get_settings().email_enabled:
        return []
    start, end = _window(now or db.utcnow())
    async with db.transaction() as session:
        reminded = MailDeliveryRepository.sent_for_renewal(mail.RENEWAL_REMINDER)
        return await SubscriptionRepository(session).renewing_ids(start, end, limit, ~reminded)


async def send_renewal_reminder(subscription_id: uuid.UUID, *, now: dt.datetime | None = None) -> str:
    """The reminder unit: `recorded` (the mail goes out after the commit), `already_sent` or `not_due`."""
    start, end = _window(now or db.utcnow())
    async with db.transaction() as session:
        subscription = await SubscriptionRepository(session).get_renewing(subscription_id, start, end)
        if subscription is None:
            return "not_due"
        renewal = subscription.next_billing_at
        profile = await find_profile(subscription.user_id)
        recorded = await mail.record(
            session, key=f"renewal-reminder:{subscription.id}:{int(renewal.timestamp() * 1000)}",
            kind=mail.RENEWAL_REMINDER, recipient=profile.email if profile else None,
            subscription_id=subscription.id, event_at=renewal)
    return "recorded" if recorded else "already_sent"
