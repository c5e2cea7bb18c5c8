"""A billing day killed with SIGKILL (issue #15): the real `decabill serve` bills customers and mails their invoices
to the real SMTP sink, and is killed while mails are pending or being sent. After the restart every invoice mail
goes out — the stragglers through the start-up reconciliation and the mail job, not an hour later — and each
invoice's mail exactly once: one Message-ID per invoice, and a second copy of it only for a mail whose SMTP
transaction had started when the process died (logged as such)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections import Counter

import httpx
import pytest

import tests.conftest as fixtures
from models.invoicing import Invoice, MailDelivery
from tests.admin.conftest import add_position
from tests.invoicing.conftest import customer_with_subscription, rows, user_id
from tests.log_lines import events
from tests.processes import DECABILL, free_port, stop

CUSTOMERS = 16


def invoice_mails(smtp_sink) -> list:
    return [m for m in list(smtp_sink.messages) if str(m["Subject"]).startswith("Your invoice ")]


async def until(condition, what: str, timeout: float, process: subprocess.Popen, log_path) -> None:
    for _ in range(int(timeout / 0.1)):
        assert process.poll() is None, f"decabill exited before {what}: {log_path.read_text()[-3000:]}"
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not {what} within {timeout} s: {log_path.read_text()[-3000:]}")


def serve(env: dict[str, str], port: int, log_path) -> subprocess.Popen:
    return subprocess.Popen([DECABILL, "serve", "--no-socket"], env={**env, "HOST": "127.0.0.1", "PORT": str(port)},
                            stdout=log_path.open("ab"), stderr=subprocess.STDOUT)


async def bill_now(base: str, admin: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        response = await fixtures.Api(client).post("/admin/billing/bill-now", token=admin, json={})
    assert response.status_code == 200, response.text


async def test_a_billing_day_killed_mid_mailing_sends_every_invoice_mail_once(
        billing_api, admin, plan, env, database, smtp_sink, tmp_path):
    if not database.startswith("postgresql"):
        pytest.skip("the killed server and the test share the PostgreSQL database")
    owners = []
    for number in range(CUSTOMERS):
        token, subscription = await customer_with_subscription(billing_api, admin, plan["id"], f"c{number}@example.com")
        owners.append(user_id(token))
        await add_position(subscription, owners[-1], "10.00")
    smtp_sink.clear()
    # each mail accepted after 0.3 s: the kill below falls while mails are being sent, however fast the PDFs are
    smtp_sink.data_delay = 0.3
    server_env = {**os.environ, "DATABASE_URL": database, "LOG_LEVEL": "info", "QUEUE_WORKER_CONCURRENCY": "2",
                  "MAIL_CLAIM_LEASE_SECONDS": "3", "MAIL_RETRY_INTERVAL": "1000"}
    port, log_path = free_port(), tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"

    async def answers() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{base}/api/health")).status_code == 200
        except httpx.TransportError:
            return False

    first = serve(server_env, port, log_path)
    try:
        await until(answers, "answering", 60, first, log_path)
        await bill_now(base, admin)

        async def mailing() -> bool:  # some mails out, and others being rendered or sent right now
            return len(invoice_mails(smtp_sink)) >= 1 and any(
                d.status == "sending" for d in await rows(MailDelivery))

        await until(mailing, "mails being sent", 120, first, log_path)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    unfinished = [d for d in await rows(MailDelivery) if d.status in ("pending", "sending")]
    assert unfinished, "the kill came after the mails were done"

    second = serve(server_env, port, log_path)
    try:
        await until(answers, "answering again", 60, second, log_path)
        await bill_now(base, admin)  # the customers the killed process had not billed yet

        async def all_mailed() -> bool:
            invoices = await rows(Invoice)
            numbers = {str(m["Subject"]).split()[2] for m in invoice_mails(smtp_sink)}
            return len(invoices) == CUSTOMERS and {i.invoice_number for i in invoices} <= numbers

        # within seconds here (lease 3 s, job every second); with the defaults, about two minutes
        await until(all_mailed, "every invoice mailed", 120, second, log_path)
        await asyncio.sleep(2)  # a straggler's second copy would arrive now
    finally:
        stop(second)
    invoices = await rows(Invoice)
    assert sorted(i.user_id for i in invoices) == sorted(owners)  # each customer billed once
    mails = invoice_mails(smtp_sink)
    ids_per_invoice: dict[str, set[str]] = {}
    for message in mails:
        ids_per_invoice.setdefault(str(message["Subject"]).split()[2], set()).add(str(message["Message-ID"]))
    assert all(len(ids) == 1 for ids in ids_per_invoice.values()), ids_per_invoice  # one mail per invoice
    assert len(ids_per_invoice) == CUSTOMERS
    copies = Counter(str(message["Message-ID"]) for message in mails)
    resent = len(events(log_path.read_text(), "invoicing.mail_resent_after_crash"))
    # a second copy only of a mail whose SMTP transaction had started when the process died (at most one per slot)
    assert sum(n - 1 for n in copies.values()) <= resent <= int(server_env["QUEUE_WORKER_CONCURRENCY"])
    assert {d.status for d in await rows(MailDelivery) if d.kind == "invoice_issued"} == {"sent"}
