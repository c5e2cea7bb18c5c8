"""The billing day under pressure (D9, D10): many users with open positions and usage, the unit run after a
simulated crash mid-batch and then by two workers at once → one invoice per user, every position and usage
record billed exactly once, invoice numbers gapless; 50 concurrent issues → 50 consecutive numbers.
On SQLite and PostgreSQL (on PostgreSQL the two workers really run in parallel)."""

from __future__ import annotations

import asyncio
import re
import datetime as dt
import uuid
from collections import Counter
from decimal import Decimal

import pytest

from decabill import db, numbering
from decabill.config import get_settings
from decabill.jobs import ledger
from decabill.observability import metrics
from decabill.operations import state as metrics_state
from decabill.invoicing import billing, billing_day, documents, invoices, rendering
from decabill.invoicing.errors import DocumentsNotRendered
from decabill.invoicing.invoices import LineInput
from decabill.invoicing.states import SYSTEM
from decabill.subscriptions import billing as subscription_billing
from decabill.tenancy import bound_tenant
from sqlalchemy import update

from models.customers import CustomerProfile
from models.invoicing import Invoice, InvoiceAuditLog, InvoiceDocumentTask, InvoiceLine, MailDelivery, UsageRecord
from models.jobs import NumberSequence
from models.subscriptions import OpenPosition
from tests.helpers import drain
from tests.invoicing.conftest import customer_with_subscription, iso, rows, user_id

USERS = 6


async def _customers_with_positions(api, admin, plan, clock) -> list[uuid.UUID]:
    """USERS customers, each with two billed periods (open positions) and one usage record with a cost."""
    subscriptions = []
    users = []
    for n in range(USERS):
        token, subscription = await customer_with_subscription(api, admin, plan["id"], f"user{n}@example.com")
        users.append(user_id(token))
        subscriptions.append(subscription)
        recorded = await api.post("/usage/record", token=token, json={
            "subscriptionId": subscription["id"], "periodStart": "2026-01-01T00:00:00Z",
            "periodEnd": "2026-01-31T00:00:00Z", "usagePayload": {"units": 3, "unitPrice": "1.25"}})
        assert recorded.status_code == 200, recorded.text
    clock.set(db.utcnow() + dt.timedelta(days=70))  # two month periods have ended
    with bound_tenant("default"):
        for subscription in subscriptions:
            for _ in range(2):
                assert await subscription_billing.bill_due_period(uuid.UUID(subscription["id"])) is not None
    return users


async def test_crash_mid_batch_then_two_workers_bill_everyone_exactly_once(billing_api, admin, plan, clock,
                                                                          monkeypatch):
    users = await _customers_with_positions(billing_api, admin, plan, clock)
    year = clock.now.year

    # A worker bills the batch and crashes while issuing the second user's invoice.
    real_next_number = numbering.next_number
    calls = Counter()

    async def crashing_next_number(session, name):
        calls[name] += 1
        if calls[name] == 2:
            raise RuntimeError("worker died")
        return await real_next_number(session, name)

    monkeypatch.setattr(invoices, "next_number", crashing_next_number)
    with bound_tenant("default"), pytest.raises(RuntimeError, match="worker died"):
        for user in users:
            await billing.bill_user(user)
    monkeypatch.setattr(invoices, "next_number", real_next_number)

    with bound_tenant("default"):
        [only] = await rows(Invoice)
        assert only.user_id == users[0] and only.invoice_number == f"INV-{year}-00001"
        assert len([p for p in await rows(OpenPosition) if p.invoice_id is None]) == 2 * (USERS - 1)
        [counter] = await rows(NumberSequence, NumberSequence.name == f"invoice-{year}")
        assert counter.last_value == 1  # the crashed issue gave its number back

    # Two workers run the whole batch at once (in opposite orders), each unit in its own transaction.
    async def worker(order: list[uuid.UUID]) -> list[str]:
        with bound_tenant("default"):
            return [(await billing.bill_user(user)).status for user in order]

    first, second = await asyncio.gather(worker(users), worker(list(reversed(users))))
    assert sorted(first + second).count("billed") == USERS - 1
    assert set(first + second) <= {"billed", "nothing", "busy"}
    # A run after everything is billed changes nothing.
    with bound_tenant("default"):
        assert {(await billing.bill_user(user)).status for user in users} == {"nothing"}

    with bound_tenant("default"):
        all_invoices = await rows(Invoice)
        positions = await rows(OpenPosition)
        usage = await rows(UsageRecord)
        lines = await rows(InvoiceLine)
    assert sorted(Counter(i.user_id for i in all_invoices).values()) == [1] * USERS  # one invoice per user
    assert sorted(i.invoice_number for i in all_invoices) == [f"INV-{year}-{n:05d}" for n in range(1, USERS + 1)]
    by_id = {i.id: i for i in all_invoices}
    assert all(p.invoice_id is not None and by_id[p.invoice_id].user_id == p.user_id for p in positions)
    assert all(u.invoice_id is not None and by_id[u.invoice_id].user_id == u.user_id for u in usage)
    # Every position and usage record is on exactly one line, of the invoice that claims it.
    assert sorted(str(line.open_position_id) for line in lines if line.open_position_id) == \
        sorted(str(p.id) for p in positions)
    assert sorted(str(line.usage_record_id) for line in lines if line.usage_record_id) == sorted(str(u.id) for u in usage)
    for invoice in all_invoices:
        mine = [line for line in lines if line.invoice_id == invoice.id]
        assert len(mine) == 3  # two periods and the usage
        assert invoice.subtotal_net == sum(line.line_net for line in mine)
        assert invoice.total_gross == invoice.subtotal_net + invoice.tax_total
        assert next(line for line in mine if line.usage_record_id).line_net == Decimal("3.75")


async def test_fifty_concurrent_issues_get_fifty_consecutive_numbers(env, make_api, admin, customer):
    env.update(SMTP_HOST="")  # no mails: this is about the counter
    await make_api()
    owner = user_id(customer)

    async def draft() -> uuid.UUID:
        with bound_tenant("default"):
            async with db.transaction() as session:
                invoice = await invoices.create_draft(session, user_id=owner, actor=SYSTEM, lines=[
                    LineInput(description="Consulting", unit_price_net=Decimal("100"))])
                return invoice.id

    drafts = [await draft() for _ in range(50)]

    async def issue(invoice_id: uuid.UUID) -> str:
        with bound_tenant("default"):
            async with db.transaction() as session:
                invoice = await invoices.locked(session, invoice_id)
                await invoices.issue(session, invoice, actor=SYSTEM)
                return invoice.invoice_number

    numbers = await asyncio.gather(*(issue(invoice_id) for invoice_id in drafts))
    year = db.utcnow().year
    assert len(set(numbers)) == 50
    assert sorted(numbers) == [f"INV-{year}-{n:05d}" for n in range(1, 51)]


async def test_the_coordinator_bills_users_on_their_billing_day_through_the_job_layer(billing_api, admin, plan, clock):
    from decabill.invoicing import tasks
    from decabill.jobs.queue import get_broker

    token, subscription = await customer_with_subscription(billing_api, admin, plan["id"], "daily@example.com")
    day = (await billing_api.get("/invoices/summary", token=token)).json()["billingDayOfMonth"]
    period_end = iso(subscription["currentPeriodEnd"])  # the 1st of next month
    with bound_tenant("default"):
        clock.set(period_end if day != 1 else period_end + dt.timedelta(days=1))  # the period ended; not the day
        assert await subscription_billing.bill_due_period(uuid.UUID(subscription["id"])) is not None
        assert await billing.users_due(0) == []
        clock.set(period_end + dt.timedelta(days=day - 1))  # the customer's billing day
        assert await billing.users_due(0) == [user_id(token)]

    broker = get_broker()
    await broker.startup()
    try:
        assert await tasks.bill_due_users() == billing.ID_SLICES  # one unit per slice of the user ids
        await drain(broker)  # the slices and what they send
    finally:
        await broker.shutdown()
    [listed] = (await billing_api.get(f"/invoices/{subscription['id']}", token=token)).json()
    assert listed["status"] == "issued"


def test_last_billing_day_start_is_the_most_recent_such_day():
    at = dt.datetime(2026, 3, 10, 15, 30, tzinfo=dt.timezone.utc)
    assert billing.last_billing_day_start(10, at) == dt.datetime(2026, 3, 10, tzinfo=dt.timezone.utc)
    assert billing.last_billing_day_start(5, at) == dt.datetime(2026, 3, 5, tzinfo=dt.timezone.utc)
    assert billing.last_billing_day_start(28, at) == dt.datetime(2026, 2, 28, tzinfo=dt.timezone.utc)
    assert billing.last_billing_day_start(11, dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)) == \
        dt.datetime(2025, 12, 11, tzinfo=dt.timezone.utc)


async def test_a_missed_billing_day_is_caught_up_at_the_next_run_and_billed_once(billing_api, admin, plan, clock):
    """The position was due on the billing day, but no run billed it then (say the server was down that day):
    the next run, a day later, bills it, once. Usage recorded after that billing day waits for the next one."""
    token, subscription = await customer_with_subscription(billing_api, admin, plan["id"], "missed@example.com")
    owner = user_id(token)
    day = (await billing_api.get("/invoices/summary", token=token)).json()["billingDayOfMonth"]
    period_end = iso(subscription["currentPeriodEnd"])  # 00:00 of the 1st of next month
    billing_date = period_end + dt.timedelta(days=day - 1)  # 00:00 of the billing day in that month
    with bound_tenant("default"):
        clock.set(period_end)
        assert await subscription_billing.bill_due_period(uuid.UUID(subscription["id"])) is not None
        clock.set(billing_date + dt.timedelta(days=1, hours=3))  # the billing day passed without a run
        assert billing.billing_today(db.utcnow()) != day
        assert await billing.users_due(0) == [owner]
        assert (await billing.bill_user(owner)).status == "billed"
        assert await billing.users_due(0) == []  # billed once

    recorded = await billing_api.post("/usage/record", token=token, json={
        "subscriptionId": subscription["id"], "periodStart": "2026-01-01T00:00:00Z",
        "periodEnd": "2026-01-02T00:00:00Z", "usagePayload": {"totalCost": 7.5}})
    assert recorded.status_code == 200, recorded.text
    with bound_tenant("default"):
        assert await billing.users_due(0) == []  # arrived after the billing day: not overdue for billing
        clock.set(billing_date + dt.timedelta(days=40))  # past the next billing day, which also had no run
        assert await billing.users_due(0) == [owner]
    listed = (await billing_api.get(f"/invoices/{subscription['id']}", token=token)).json()
    assert [invoice["status"] for invoice in listed] == ["issued"]


# --- the batch (issue #19): many users in one transaction, the same rows as the unit of one ---------------


def _shape(invoice: Invoice, lines: list[InvoiceLine], audit: list[InvoiceAuditLog], mails: list[MailDelivery],
           tasks: list[InvoiceDocumentTask]) -> dict:
    """What an issued invoice of the billing day consists of, without its ids, number and times."""
    return {
        "invoice": {name: getattr(invoice, name) for name in (
            "status", "origin", "currency", "subtotal_net", "tax_total", "total_gross", "balance_due", "amount_paid",
            "tax_rule", "tax_country", "due_date", "payment_processor", "seller")},
        "order_reference": re.sub(r"SUB-\d+", "SUB-n", invoice.order_reference or ""),
        "buyer": {k: v for k, v in (invoice.buyer or {}).items() if k not in ("name", "email")},
        "snapshot": {k: v for k, v in (invoice.tax_snapshot or {}).items()},
        "lines": sorted((re.sub(r"SUB-\d+", "SUB-n", line.description), line.quantity, line.unit_price_net,
                         line.tax_rate, line.vat_category_code, line.line_net, line.line_tax, line.line_gross,
                         line.open_position_id is not None, line.usage_record_id is not None) for line in lines),
        "audit": sorted((entry.process, entry.status_before, entry.status_after, entry.actor_type,
                         sorted(entry.context)) for entry in audit),
        "mails": [mail.kind for mail in mails],  # its status: sent or not yet, as the render job got on
        "tasks": len(tasks),
    }


async def _shapes(users: list[uuid.UUID]) -> list[dict]:
    shapes = []
    for user in users:
        [invoice] = await rows(Invoice, Invoice.user_id == user)
        shapes.append(_shape(invoice, await rows(InvoiceLine, InvoiceLine.invoice_id == invoice.id),
                             await rows(InvoiceAuditLog, InvoiceAuditLog.invoice_id == invoice.id),
                             await rows(MailDelivery, MailDelivery.invoice_id == invoice.id),
                             await rows(InvoiceDocumentTask, InvoiceDocumentTask.invoice_id == invoice.id)))
    return shapes


async def test_a_batch_writes_for_each_user_what_the_unit_of_one_user_writes(billing_api, admin, plan, clock):
    users = await _customers_with_positions(billing_api, admin, plan, clock)
    alone, together = users[:2], users[2:]
    year = clock.now.year
    with bound_tenant("default"):
        for user in alone:
            assert (await billing.bill_user(user)).status == "billed"
        outcomes = await billing.bill_users(together)
        assert outcomes == Counter({"billed": len(together), "invoices": len(together)})
        assert await billing.bill_users(users) == Counter({"nothing": USERS})  # run again: nothing left
        by_unit, by_batch = await _shapes(alone), await _shapes(together)
        all_invoices = await rows(Invoice)
        assert await rows(OpenPosition, OpenPosition.invoice_id.is_(None)) == []
        assert await rows(UsageRecord, UsageRecord.invoice_id.is_(None)) == []
    assert by_batch[0] == by_unit[0]
    assert all(shape == by_unit[0] for shape in by_batch + by_unit)
    assert by_unit[0]["audit"][0][0] == "invoice.create" and by_unit[0]["mails"] == ["invoice_issued"]
    assert by_unit[0]["tasks"] == 1 and len(by_unit[0]["lines"]) == 3
    assert sorted(i.invoice_number for i in all_invoices) == [f"INV-{year}-{n:05d}" for n in range(1, USERS + 1)]
    # the batch's numbers follow its order
    numbered = {i.user_id: i.invoice_number for i in all_invoices}
    assert [numbered[user] for user in together] == [f"INV-{year}-{n:05d}" for n in range(3, USERS + 1)]


async def test_a_customer_who_cannot_be_invoiced_does_not_sink_the_batch(billing_api, admin, plan, clock):
    users = await _customers_with_positions(billing_api, admin, plan, clock)
    broken = users[1]
    async with db.transaction() as session:  # the profile lost its address since the subscription was ordered
        await session.execute(update(CustomerProfile).where(CustomerProfile.user_id == broken)
                              .values(address_line1=None))
    with bound_tenant("default"):
        outcomes = await billing.bill_users(users)
        assert outcomes == Counter({"billed": USERS - 1, "invoices": USERS - 1, "failed": 1})
        assert await rows(Invoice, Invoice.user_id == broken) == []
        assert len(await rows(OpenPosition, OpenPosition.user_id == broken, OpenPosition.invoice_id.is_(None))) == 2
        numbers = sorted(i.invoice_number for i in await rows(Invoice))
    year = clock.now.year
    assert numbers == [f"INV-{year}-{n:05d}" for n in range(1, USERS)]  # gapless: the failed one took none


async def test_a_customer_failing_after_the_batch_counts_in_the_failed_gauge(billing_api, admin, plan, clock):
    """decabill_billing_day_customers{state="failed"} counts a customer the batch left out and who then failed on
    their own — as a failed unit of one customer (`invoicing.bill_user`), which `decabill jobs` lists too."""
    users = await _customers_with_positions(billing_api, admin, plan, clock)
    broken = users[1]
    async with db.transaction() as session:
        await session.execute(update(CustomerProfile).where(CustomerProfile.user_id == broken)
                              .values(address_line1=None))
    assert await billing_day_gauge("failed") == 0
    with bound_tenant("default"):
        assert (await billing.bill_users(users))["failed"] == 1
    assert await billing_day_gauge("failed") == 1
    failed = [unit.args["args"] for unit in await ledger.units("failed") if unit.task_name == "invoicing.bill_user"]
    assert failed == [["default", str(broken)]]


async def billing_day_gauge(state: str) -> float:
    """`decabill_billing_day_customers{state}` as /metrics would report it now."""
    await metrics_state.refresh(get_settings())
    return metrics.BILLING_DAY_CUSTOMERS.labels(state)._value.get()


class Killed(BaseException):
    """The process dies (nothing after this point runs, no `except Exception` sees it)."""


async def test_a_batch_killed_before_its_commit_leaves_nothing_and_the_next_run_bills_everyone_once(
        billing_api, admin, plan, clock, monkeypatch):
    users = await _customers_with_positions(billing_api, admin, plan, clock)

    async def killed(session, name, count):
        raise Killed()

    real_next_numbers = invoices.next_numbers
    monkeypatch.setattr(invoices, "next_numbers", killed)
    with bound_tenant("default"), pytest.raises(Killed):
        await billing.bill_users(users)
    monkeypatch.setattr(invoices, "next_numbers", real_next_numbers)
    with bound_tenant("default"):
        assert await rows(Invoice) == [] and await rows(InvoiceLine) == [] and await rows(MailDelivery) == []
        assert await rows(OpenPosition, OpenPosition.invoice_id.is_not(None)) == []
        # two units bill the same batch at once: each user once
        first, second = await asyncio.gather(billing.bill_users(users), billing.bill_users(list(reversed(users))))
        assert first["invoices"] + second["invoices"] == USERS
        assert (first + second)["billed"] == USERS
        assert set(first + second) <= {"billed", "busy", "nothing", "invoices"}
        all_invoices = await rows(Invoice)
    year = clock.now.year
    assert sorted(Counter(i.user_id for i in all_invoices).values()) == [1] * USERS
    assert sorted(i.invoice_number for i in all_invoices) == [f"INV-{year}-{n:05d}" for n in range(1, USERS + 1)]


async def test_the_due_users_are_found_in_slices_a_page_at_a_time(billing_api, admin, plan, clock):
    users = await _customers_with_positions(billing_api, admin, plan, clock)
    with bound_tenant("default"):
        every = await billing.users_due(0)
        assert sorted(every) == sorted(users)
        assert [user for batch in [b async for b in billing.due_batches(4)] for user in batch] == every  # pages
        sliced = []
        for lowest, below in billing.id_slices(8):
            async for batch in billing.due_batches(2, lowest=lowest, below=below):
                assert all(user >= lowest and (below is None or user < below) for user in batch)
                sliced += batch
        assert sliced == every
        outcomes = Counter()
        for lowest, below in billing.id_slices(8):
            outcomes.update(await billing.bill_slice(lowest, below, batch_size=4))
        assert outcomes == Counter({"billed": USERS, "invoices": USERS})
        assert await billing.users_due(0) == []


# --- the billing day by hand (`decabill bill-day` without Redis): every PDF made before it ends -----------


async def _no_job() -> None:
    """A render job that never runs (sent by a process killed right after its commit)."""


async def test_the_billing_day_by_hand_renders_what_no_job_renders_any_more_before_it_ends(
        billing_api, admin, plan, clock, smtp_sink, monkeypatch):
    """After its own issuing, `finish_documents` renders and mails every task no live process works on: those
    whose jobs were lost (pending, of any age) and one abandoned mid-render (its claim timed out); a fresh
    claim — a live process rendering it right now — is left alone."""
    await _customers_with_positions(billing_api, admin, plan, clock)
    monkeypatch.setattr(rendering, "_send", lambda tenant, task_id: _no_job)
    summary = await billing_day.run("default", concurrency=2)
    assert summary.invoices == USERS
    smtp_sink.clear()
    with bound_tenant("default"):
        abandoned, live, *_ = sorted(await rows(InvoiceDocumentTask), key=lambda task: task.id)
        async with db.transaction() as session:
            await session.execute(update(InvoiceDocumentTask).where(InvoiceDocumentTask.id == abandoned.id).values(
                status="rendering", attempts=1, claimed_at=db.utcnow() - rendering.CLAIM_TIMEOUT - dt.timedelta(1)))
            await session.execute(update(InvoiceDocumentTask).where(InvoiceDocumentTask.id == live.id).values(
                status="rendering", attempts=1, claimed_at=db.utcnow()))
    assert await billing_day.finish_documents("default") == USERS - 1
    assert await billing_day.finish_documents("default") == 0  # nothing left to do
    with bound_tenant("default"):
        tasks = {task.id: task.status for task in await rows(InvoiceDocumentTask)}
        mailed = {d.invoice_id for d in await rows(MailDelivery) if d.status == "sent"}
    assert tasks.pop(live.id) == "rendering" and set(tasks.values()) == {"rendered"}
    assert mailed == {task.invoice_id for task in await _rows_of_tasks(tasks)}
    ready = [m for m in smtp_sink.messages if " is ready" in str(m["Subject"])]
    assert len(ready) == USERS - 1  # one mail each


async def _rows_of_tasks(task_ids) -> list[InvoiceDocumentTask]:
    with bound_tenant("default"):
        return await rows(InvoiceDocumentTask, InvoiceDocumentTask.id.in_(list(task_ids)))


async def test_the_billing_day_by_hand_stops_when_a_whole_round_of_pdfs_only_fails(
        billing_api, admin, plan, clock, monkeypatch):
    await _customers_with_positions(billing_api, admin, plan, clock)
    monkeypatch.setattr(rendering, "_send", lambda tenant, task_id: _no_job)
    await billing_day.run("default", concurrency=2)

    def broken(invoice, lines):
        raise OSError("no fonts")

    monkeypatch.setattr(documents, "invoice_document", broken)
    with pytest.raises(DocumentsNotRendered, match="None of 6 invoice PDFs could be rendered: OSError: no fonts"):
        await billing_day.finish_documents("default")
    with bound_tenant("default"):
        tasks = await rows(InvoiceDocumentTask)
    assert {(task.status, task.attempts) for task in tasks} == {("pending", 1)}  # attempts left for later


async def test_render_batches_make_each_pdf_and_mail_once_and_take_over_a_dead_batch_after_the_claim_timeout(
        billing_api, admin, plan, clock, smtp_sink, monkeypatch):
    """Two render jobs over overlapping tasks at once (a job sent twice, the coordinator's resend): each task is
    claimed by one of them, each mail sent once. A batch whose process died (its tasks left `rendering`) is
    not taken before CLAIM_TIMEOUT, and is then."""
    await _customers_with_positions(billing_api, admin, plan, clock)
    monkeypatch.setattr(rendering, "_send", lambda tenant, task_ids: _no_job)
    await billing_day.run("default", concurrency=2)
    smtp_sink.clear()
    with bound_tenant("default"):
        task_ids = sorted(task.id for task in await rows(InvoiceDocumentTask))
        dead, alive = task_ids[:2], task_ids[2:]
        async with db.transaction() as session:  # a batch claimed by a process killed -9 since
            await session.execute(update(InvoiceDocumentTask).where(InvoiceDocumentTask.id.in_(dead)).values(
                status="rendering", attempts=1, claimed_at=db.utcnow()))
        first, second = await asyncio.gather(rendering.render_batch(task_ids[:5]), rendering.render_batch(alive))
        assert not set(first) & set(second) and set(first) | set(second) == set(alive)
        assert set(first.values()) | set(second.values()) == {"rendered"}
        assert await rendering.render_batch(task_ids) == {}  # the dead batch's claims still hold
        clock.set(db.utcnow() + rendering.CLAIM_TIMEOUT + dt.timedelta(seconds=1))
        assert await rendering.render_batch(task_ids) == {task_id: "rendered" for task_id in dead}
        assert {task.status for task in await rows(InvoiceDocumentTask)} == {"rendered"}
        assert {d.status for d in await rows(MailDelivery)} == {"sent"}
    ready = [str(m["Message-ID"]) for m in smtp_sink.messages if " is ready" in str(m["Subject"])]
    assert len(ready) == len(set(ready)) == USERS  # one mail each


async def test_the_first_render_job_after_issuing_refreshes_the_statistics_of_the_issued_tables(billing_api, database):
    """Issue #19: the tables a billing day fills grow from nothing to 100,000 rows within minutes; planned on the
    old statistics the render batches' statements scanned the tenant index of the whole table. The first render
    job after issuing units ran in the process ANALYZEs them (PostgreSQL), once."""
    from sqlalchemy import text

    if not database.startswith("postgresql"):
        pytest.skip("ANALYZE and pg_stat_user_tables are PostgreSQL's")
    tables = "('invoices', 'invoice_lines', 'invoice_documents', 'mail_deliveries')"

    async def analysed_since() -> tuple:
        async with db.transaction() as session:
            return (await session.execute(text(
                "SELECT count(*) FILTER (WHERE last_analyze >= :since), count(*) FROM pg_stat_user_tables"
                f" WHERE relname IN {tables}"), {"since": since})).one()

    rendering._statistics_stale = False  # (set by an earlier test's units)
    with bound_tenant("default"):
        async with db.transaction() as session:
            since = (await session.execute(text("SELECT clock_timestamp()"))).scalar_one()
        await rendering.after_issuing()  # no issuing unit ran here: nothing analysed
        assert tuple(await analysed_since()) == (0, 4)
        async with rendering.issuing():
            pass  # a billing-day unit ran in this process
        await rendering.after_issuing()
        assert tuple(await analysed_since()) == (4, 4)


def _attachments(smtp_sink) -> dict[str, bytes]:
    """The PDF attached to each "invoice ... is ready" mail, by file name."""
    return {part.get_filename(): part.get_content() for message in smtp_sink.messages
            if " is ready" in str(message["Subject"]) for part in message.iter_attachments()}


async def test_the_render_pool_stores_each_pdf_as_rendered_on_demand_and_a_crash_before_the_commit_loses_nothing(
        billing_api, admin, plan, clock, smtp_sink, monkeypatch):
    """Issue #19: the render pool's processes write the PDF files themselves (the worker gets only the bytes, for the
    mail). The file is the PDF a download renders on demand, byte for byte, and the one attached to the mail. A
    process killed after the pool wrote the files but before the batch's commit (tasks left `rendering`, no mail
    sent) loses nothing and doubles nothing: the batch taken over after the claim timeout reuses the stored files
    (renders none) and sends each mail once."""
    from decabill.documents import render_invoice_pdf
    from decabill.invoicing import render_pool
    from decabill.invoicing.repository import InvoiceDocumentRepository, InvoiceLineRepository, InvoiceRepository

    await _customers_with_positions(billing_api, admin, plan, clock)
    monkeypatch.setattr(rendering, "_send", lambda tenant, task_ids: _no_job)
    await billing_day.run("default", concurrency=2)
    smtp_sink.clear()

    async def killed(self, task_ids, now):
        raise ConnectionResetError("the process died before the commit")

    with bound_tenant("default"):
        task_ids = sorted(task.id for task in await rows(InvoiceDocumentTask))
        with monkeypatch.context() as patched:
            patched.setattr(InvoiceDocumentRepository, "mark_rendered", killed)
            with pytest.raises(ConnectionResetError):
                await rendering.render_batch(task_ids)
        assert {task.status for task in await rows(InvoiceDocumentTask)} == {"rendering"}
        assert smtp_sink.messages == []
        files = {}
        async with db.transaction() as session:
            for invoice in await rows(Invoice):
                path = documents._path(invoice.pdf_storage_key or documents.storage_key(invoice))
                lines = await InvoiceLineRepository(session).of_invoice(invoice.id)
                files[f"{invoice.invoice_number}.pdf"] = path.read_bytes()  # written by the pool before the "kill"
                assert files[f"{invoice.invoice_number}.pdf"] == render_invoice_pdf(
                    documents.invoice_document(await InvoiceRepository(session).get(invoice.id), lines))
        assert len(files) == USERS

        async def no_render(*args):
            raise AssertionError("rendered again although its file is stored")

        monkeypatch.setattr(render_pool, "render", no_render)
        assert await rendering.render_batch(task_ids) == {}  # the dead batch's claims still hold
        clock.set(db.utcnow() + rendering.CLAIM_TIMEOUT + dt.timedelta(seconds=1))
        assert await rendering.render_batch(task_ids) == {task_id: "rendered" for task_id in task_ids}
        assert {d.status for d in await rows(MailDelivery)} == {"sent"}
    ready = [str(m["Message-ID"]) for m in smtp_sink.messages if " is ready" in str(m["Subject"])]
    assert len(ready) == len(set(ready)) == USERS  # one mail each
    assert _attachments(smtp_sink) == files
