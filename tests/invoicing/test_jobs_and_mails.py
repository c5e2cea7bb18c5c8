"""The overdue job, renewal reminders and the mail outbox: each mail once per event, however often the jobs
run; a failed send is retried by the retry job."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from decabill import db
from decabill.invoicing import invoices, mail, overdue, reminders
from decabill.invoicing.invoices import LineInput
from decabill.invoicing.states import SYSTEM
from decabill.tenancy import bound_tenant
from models.invoicing import Invoice, InvoiceAuditLog, MailDelivery
from tests.invoicing.conftest import CUSTOMER_EMAIL, iso, order, rows, user_id


async def _issue(owner: uuid.UUID) -> Invoice:
    with bound_tenant("default"):
        async with db.transaction() as session:
            invoice = await invoices.create_draft(session, user_id=owner, actor=SYSTEM,
                                                  lines=[LineInput(description="Setup", unit_price_net=Decimal("80"))])
            await invoices.issue(session, invoice, actor=SYSTEM)
    return invoice


async def test_past_due_invoices_become_overdue_once(billing_api, customer, clock, smtp_sink):
    invoice = await _issue(user_id(customer))
    with bound_tenant("default"):
        clock.set(dt.datetime.combine(invoice.due_date, dt.time(23, 59), dt.timezone.utc))  # due today: not overdue
        assert await overdue.due_for_overdue(100) == []
        assert await overdue.mark_overdue(invoice.id) == "not_due"
        clock.set(clock.now + dt.timedelta(minutes=2))  # the next day
        assert await overdue.due_for_overdue(100) == [invoice.id]
        assert await overdue.mark_overdue(invoice.id) == "overdue"
        assert await overdue.mark_overdue(invoice.id) == "not_due"  # a second delivery: nothing
        assert await overdue.due_for_overdue(100) == []
        [entry] = await rows(InvoiceAuditLog, InvoiceAuditLog.process == "invoice.overdue")
    assert (entry.status_before, entry.status_after, entry.actor_type) == ("issued", "overdue", "system")
    detail = (await billing_api.get(f"/invoices/ref/{invoice.id}", token=customer)).json()
    assert detail["status"] == "overdue" and detail["canPay"] and detail["balanceDue"] == 95.2
    listed = (await billing_api.get("/invoices/open-overdue", token=customer)).json()
    assert [i["status"] for i in listed] == ["overdue"]
    subjects = [m["Subject"] for m in smtp_sink.to(CUSTOMER_EMAIL)]
    assert subjects.count(f"Invoice {invoice.invoice_number} is overdue") == 1


async def test_the_overdue_coordinator_pages_through_every_candidate(billing_api, customer, clock):
    issued = [await _issue(user_id(customer)) for _ in range(5)]
    with bound_tenant("default"):
        clock.set(clock_after(issued[0].due_date))
        assert sorted(await overdue.due_for_overdue(2)) == sorted(i.id for i in issued)  # pages of 2, all of them


def clock_after(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(8), dt.timezone.utc)


async def test_renewal_reminders_are_sent_once_per_renewal(billing_api, env, admin, customer, plan, clock, smtp_sink):
    subscription = await order(billing_api, customer, plan["id"])
    renewal = iso(subscription["nextBillingAt"])
    with bound_tenant("default"):
        clock.set(renewal - dt.timedelta(days=4))  # REMINDER_DAYS (3) away: not yet
        assert await reminders.due_for_reminder(100) == []
        clock.set(renewal - dt.timedelta(days=2))
        assert await reminders.due_for_reminder(100) == [uuid.UUID(subscription["id"])]
        assert await reminders.send_renewal_reminder(uuid.UUID(subscription["id"])) == "recorded"
        assert await reminders.send_renewal_reminder(uuid.UUID(subscription["id"])) == "already_sent"
        assert await reminders.due_for_reminder(100) == []
    [reminder] = [m for m in smtp_sink.to(CUSTOMER_EMAIL) if m["Subject"].startswith("Upcoming subscription renewal")]
    assert reminder["Subject"] == f"Upcoming subscription renewal: {plan['name']}"
    assert renewal.date().isoformat() in smtp_sink.text_of(reminder)

    env.update(SMTP_HOST="")  # without SMTP the coordinator has nothing to do
    with bound_tenant("default"):
        clock.set(renewal - dt.timedelta(days=1))
        assert await reminders.due_for_reminder(100) == []


async def test_a_failed_send_is_retried_and_sent_once(billing_api, env, customer, clock, smtp_sink):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    env.update(SMTP_PORT=str(dead_port))
    invoice = await _issue(user_id(customer))
    with bound_tenant("default"):
        [delivery] = await rows(MailDelivery)
        assert (delivery.kind, delivery.status, delivery.attempts) == ("invoice_issued", "pending", 1)
        assert await mail.pending_deliveries(10) == []  # too fresh: its request may still be sending it
        env.update(SMTP_PORT=str(smtp_sink.port))
        clock.set(db.utcnow() + dt.timedelta(minutes=6))
        assert await mail.pending_deliveries(10) == [delivery.id]
        assert await mail.deliver(delivery.id) == "sent"
        assert await mail.deliver(delivery.id) == "not_pending"
        assert await mail.pending_deliveries(10) == []
    subjects = [m["Subject"] for m in smtp_sink.to(CUSTOMER_EMAIL)]
    assert subjects.count(f"Your invoice {invoice.invoice_number} is ready") == 1


async def test_without_smtp_mails_are_recorded_as_skipped(billing_api, env, make_api, customer, smtp_sink):
    env.update(SMTP_HOST="")
    await make_api()
    await _issue(user_id(customer))
    with bound_tenant("default"):
        [delivery] = await rows(MailDelivery)
    assert delivery.status == "skipped"
    assert not [m for m in smtp_sink.to(CUSTOMER_EMAIL) if m["Subject"].startswith("Your invoice")]


async def test_a_sender_that_died_loses_its_mail_once_the_lease_runs_out(billing_api, env, customer, clock, smtp_sink):
    """The states a SIGKILL leaves (tests/invoicing/test_mail_crash.py kills a real process): `sending` with a lease
    that runs out, before or during the SMTP transaction; the mail goes out again with the same Message-ID."""
    invoice = await _issue(user_id(customer))
    with bound_tenant("default"):
        [delivery] = await rows(MailDelivery)
    assert delivery.status == "sent"  # delivered after the commit, with its stable Message-ID
    [first] = smtp_sink.to(CUSTOMER_EMAIL)[-1:]
    assert first["Message-ID"].startswith(f"<mail-{delivery.id}@")
    lease = dt.timedelta(seconds=60)
    for smtp_started in (None, db.utcnow()):  # died while rendering; died mid-transaction
        smtp_sink.clear()
        now = db.utcnow()
        with bound_tenant("default"):
            async with db.transaction() as session:
                row = await session.get(MailDelivery, delivery.id)
                row.status, row.claim_token, row.lease_until = "sending", uuid.uuid4(), now + lease
                row.smtp_started_at, row.attempts = smtp_started, 1
            assert await mail.deliver(delivery.id) == "not_pending"  # the lease still holds
            assert await mail.pending_deliveries(10) == []
            clock.set(now + lease + dt.timedelta(seconds=1))
            assert await mail.pending_deliveries(10) == [delivery.id]
            assert await mail.deliver(delivery.id) == "sent"
            clock.set(None)
        [again] = smtp_sink.to(CUSTOMER_EMAIL)
        assert again["Message-ID"] == first["Message-ID"]
        assert again["Subject"] == f"Your invoice {invoice.invoice_number} is ready"


async def test_the_retry_job_leaves_invoice_mails_to_their_unrendered_pdf_task(billing_api, customer, clock, smtp_sink,
                                                                             monkeypatch):
    """Issue #19: during a long billing day an invoice mail waits for its render task far longer than the retry
    job's pause; taken by the retry job it would have its PDF rendered a second time, on demand. It is left to the
    task (its job renders and sends it) while the task is pending or freshly claimed; the retry job sends render
    jobs for the waiting tasks instead (their job may be lost); a claim older than a mail lease counts as dead."""
    from decabill.invoicing import rendering
    from models.invoicing import InvoiceDocumentTask

    monkeypatch.setattr(rendering, "_send", lambda tenant, task_ids: _nothing)  # the render job is "lost"
    with bound_tenant("default"):
        async with db.transaction() as session:
            invoice = await invoices.create_draft(session, user_id=user_id(customer), actor=SYSTEM,
                                                  lines=[LineInput(description="Setup", unit_price_net=Decimal("80"))])
            await invoices.issue(session, invoice, actor=SYSTEM, defer_documents=True)
        [task] = await rows(InvoiceDocumentTask)
        [delivery] = await rows(MailDelivery)
        assert (task.status, delivery.status) == ("pending", "pending")
        now = db.utcnow()
        clock.set(now + dt.timedelta(minutes=6))
        assert await mail.pending_deliveries(10) == []  # its PDF task is pending: the render job sends it
        assert await rendering.due_for_rendering(10, mail.RETRY_AFTER) == [task.id]  # what the retry job re-sends
        async with db.transaction() as session:  # a render job claims it now
            row = await session.get(InvoiceDocumentTask, task.id)
            row.status, row.claimed_at = "rendering", clock.now
        assert await mail.pending_deliveries(10) == []
        clock.set(clock.now + dt.timedelta(seconds=61))  # a mail lease (60 s) later: the renderer died
        assert await mail.pending_deliveries(10) == [delivery.id]
        async with db.transaction() as session:
            row = await session.get(InvoiceDocumentTask, task.id)
            row.status = "rendered"
        assert await mail.pending_deliveries(10) == [delivery.id]
        assert await mail.deliver(delivery.id) == "sent"
        clock.set(None)
    subjects = [m["Subject"] for m in smtp_sink.to(CUSTOMER_EMAIL)]
    assert subjects.count(f"Your invoice {invoice.invoice_number} is ready") == 1


async def _nothing() -> None:
    return None
