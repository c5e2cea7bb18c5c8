"""Background jobs of invoicing: thin taskiq wrappers around the unit functions (which the tests call
directly). Coordinators fan out one unit per due entity and tenant (decabill/jobs).

* `invoicing.bill_due_users` (every OPEN_POSITION_INVOICE_SCHEDULER_INTERVAL ms) → `invoicing.bill_slice` per
  slice of the user id space (`billing.ID_SLICES`), which bills the users of its slice whose billing day is
  today and who have something unbilled, OPEN_POSITION_INVOICE_BATCH_SIZE per transaction (`invoicing.bill_users`
  bills one such batch; `invoicing.bill_user`, one user, is what admin bill-now sends);
* `invoicing.mark_due_overdue` (INVOICE_OVERDUE_SCHEDULER_INTERVAL; pages of INVOICE_OVERDUE_SCHEDULER_BATCH_SIZE,
  all of them) → `invoicing.mark_overdue` per past-due invoice;
* `invoicing.send_due_renewal_reminders` (REMINDER_SCHEDULER_INTERVAL; REMINDER_SCHEDULER_BATCH_SIZE; nothing
  while SMTP is off) → `invoicing.send_renewal_reminder` per subscription renewing within REMINDER_DAYS;
* `invoicing.render_documents` (sent after billing-day invoices are issued, one per `rendering.BATCH_SIZE`)
  → their PDFs rendered and stored, then their mails sent over one SMTP connection (`mail.deliver_many`, in
  the same job); `invoicing.render_due_documents` (REMINDER_SCHEDULER_INTERVAL; REMINDER_SCHEDULER_BATCH_SIZE)
  sends them again for tasks left pending or abandoned;
* `invoicing.retry_mails` (MAIL_RETRY_INTERVAL, and once when a scheduler starts; REMINDER_SCHEDULER_BATCH_SIZE)
  → `invoicing.deliver_mail` per billing mail still pending, or abandoned by a sender that died.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

from decabill.config import get_settings
from decabill.tenancy import bound_tenant
from decabill.jobs.queue import enqueue, fan_out, periodic, run_unit, task
from decabill.invoicing import billing, mail, overdue, reminders, rendering


@task("invoicing.bill_user")
async def bill_user(tenant: str, user_id: str) -> str:
    async def work() -> str:
        return (await billing.bill_user(uuid.UUID(user_id))).status

    return await run_unit("invoicing.bill_user", tenant, work)


@task("invoicing.bill_users")
async def bill_users(tenant: str, user_ids: list[str]) -> dict[str, int]:
    async def work() -> dict[str, int]:
        async with rendering.issuing():
            return dict(await billing.bill_users([uuid.UUID(user_id) for user_id in user_ids]))

    return await run_unit("invoicing.bill_users", tenant, work)


@task("invoicing.bill_slice")
async def bill_slice(tenant: str, lowest: str, below: str | None) -> dict[str, int]:
    async def work() -> dict[str, int]:
        async with rendering.issuing():
            return dict(await billing.bill_slice(uuid.UUID(lowest), uuid.UUID(below) if below else None,
                                                 batch_size=get_settings().open_position_invoice_batch_size))

    return await run_unit("invoicing.bill_slice", tenant, work)


@periodic("invoicing.bill_due_users", interval=lambda s: s.open_position_invoice_scheduler_interval)
async def bill_due_users() -> int:
    """One `invoicing.bill_slice` per tenant and slice of the user ids (`billing.ID_SLICES`): each bills the
    due users of its slice in batches of OPEN_POSITION_INVOICE_BATCH_SIZE (nothing per customer kept here)."""
    sent = 0
    for tenant in get_settings().tenants:
        with bound_tenant(tenant):
            if not await billing.users_due_page(1):
                continue  # nobody due in this tenant: no units
        for lowest, below in billing.id_slices():
            await enqueue(bill_slice, tenant, str(lowest), str(below) if below else None)
            sent += 1
    return sent


@task("invoicing.mark_overdue")
async def mark_overdue(tenant: str, invoice_id: str) -> str:
    return await run_unit("invoicing.mark_overdue", tenant, lambda: overdue.mark_overdue(uuid.UUID(invoice_id)))


@periodic("invoicing.mark_due_overdue", interval=lambda s: s.invoice_overdue_scheduler_interval)
async def mark_due_overdue() -> int:
    return await fan_out(overdue.due_for_overdue, mark_overdue, get_settings().invoice_overdue_scheduler_batch_size)


@task("invoicing.send_renewal_reminder")
async def send_renewal_reminder(tenant: str, subscription_id: str) -> str:
    return await run_unit("invoicing.send_renewal_reminder", tenant,
                          lambda: reminders.send_renewal_reminder(uuid.UUID(subscription_id)))


@periodic("invoicing.send_due_renewal_reminders", interval=lambda s: s.reminder_scheduler_interval)
async def send_due_renewal_reminders() -> int:
    batch_size = get_settings().reminder_scheduler_batch_size
    return await fan_out(reminders.due_for_reminder, send_renewal_reminder, batch_size)


@task("invoicing.deliver_mail")
async def deliver_mail(tenant: str, delivery_id: str) -> str:
    return await run_unit("invoicing.deliver_mail", tenant, lambda: mail.deliver(uuid.UUID(delivery_id)))


@periodic("invoicing.retry_mails", interval=lambda s: s.mail_retry_interval, at_startup=True)
async def retry_mails() -> int:
    """The mails to retry, and render jobs for the tasks whose invoice mail waits for its PDF (pending as long
    as a mail waits before a retry): `pending_deliveries` leaves those mails to their task's job, which a
    kill -9 may have lost (a task another job renders meanwhile is claimed once: no PDF made twice)."""
    batch_size = get_settings().reminder_scheduler_batch_size
    sent = await fan_out(mail.pending_deliveries, deliver_mail, batch_size)
    return sent + await _send_render_jobs(lambda: rendering.due_for_rendering(batch_size, mail.RETRY_AFTER))


@task("invoicing.render_documents")
async def render_documents(tenant: str, task_ids: list[str]) -> dict[str, int]:
    async def work() -> dict[str, int]:
        return dict(Counter((await rendering.render_batch([uuid.UUID(task_id) for task_id in task_ids])).values()))

    await rendering.after_issuing()  # without a queue slot (see there)
    return await run_unit("invoicing.render_documents", tenant, work)


@task("invoicing.render_document")
async def render_document(tenant: str, task_id: str) -> str:
    """One task: what was sent before the batches (still on a queue when a worker is upgraded)."""
    await rendering.after_issuing()
    return await run_unit("invoicing.render_document", tenant, lambda: rendering.render(uuid.UUID(task_id)))


@periodic("invoicing.render_due_documents", interval=lambda s: s.reminder_scheduler_interval)
async def render_due_documents() -> int:
    """One `invoicing.render_documents` per `rendering.BATCH_SIZE` of the tasks left pending or abandoned."""
    return await _send_render_jobs(lambda: rendering.due_for_rendering(get_settings().reminder_scheduler_batch_size))


async def _send_render_jobs(find: Callable[[], Awaitable[list[uuid.UUID]]]) -> int:
    """One `invoicing.render_documents` per `rendering.BATCH_SIZE` of the tasks `find()` gives, in each tenant."""
    sent = 0
    for tenant in get_settings().tenants:
        with bound_tenant(tenant):
            task_ids = await find()
        for first in range(0, len(task_ids), rendering.BATCH_SIZE):
            await enqueue(render_documents, tenant, [str(task_id) for task_id in task_ids[first:first + rendering.BATCH_SIZE]])
            sent += 1
    return sent
