"""The billing day at scale, end to end on PostgreSQL (issue #19).

    .venv/bin/python -m bench.billing_day --customers 10000 --positions 10 --workers 2

1. (Re)creates the database `--database` (default `decabill_bench`) on `--pg-url`, migrates it, and seeds
   N customers (user + complete profile + one subscription) with M open positions each (recurring and final
   charges) and a usage record for every tenth customer, all due today — straight into PostgreSQL (COPY).
2. Starts an SMTP sink in this process (counts messages, keeps none) and W `decabill worker` processes on a
   Redis stream of its own (REDIS_KEY_PREFIX bench-<random>), then sends the billing day's coordinator
   `invoicing.bill_due_users` once, as the scheduler would.
3. Watches the invoice number counters and the SMTP sink's count until every customer has an issued invoice
   and every invoice has its PDF stored and its mail handed to SMTP (or `--timeout`) — cheaply, not to take
   the workers' CPU (see ISSUED) — then prints: invoices issued per second, the time to all
   invoices issued, the time to all PDFs and mails done (and to all PDFs, to all mails), p50/p99 of the
   billing unit (from the workers' `invoicing.batch_billed` log lines), and per worker process its RSS at
   start, at the end and its peak (VmHWM) — and those of its render pool's processes — with the load
   average.

Not part of the test suite (the machine's speed is not a test). Needs PostgreSQL and Redis on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import asyncpg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from bench.pg import recreate_database

from decabill.invoicing.billing import billing_today
from tests.processes import free_port

DECABILL = str(Path(sys.executable).with_name("decabill"))
TENANT = "default"


class _CountingSMTP(SMTP):
    """aiosmtpd's server with a DATA that only finds the message's end. aiosmtpd reads DATA a line at a time
    (a coroutine call, a debug log call and two joins per line: ~900 lines per mail with its base64 PDF, ~2 ms of
    Python per mail) — at 130 mails/s a quarter of a core, on the two cores the workers need. An SMTP server
    elsewhere costs the workers nothing; the bench only counts, so it reads up to the final `.` line in large
    pieces (the StreamReader's `readuntil`, a piece per LimitOverrunError) and answers 250."""

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's command hook name
        if await self.check_helo_needed():
            return
        if self.envelope is None or not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        while True:
            try:
                await self._reader.readuntil(b"\r\n.\r\n")
                break
            except asyncio.LimitOverrunError as exc:  # no end within the reader's limit yet: drop what is read
                await self._reader.readexactly(exc.consumed)
            except asyncio.IncompleteReadError:
                return  # the client went away mid-message: not received
        self._set_post_data_state()
        await self.push(await self.event_handler.handle_DATA(self, self.session, self.envelope))


class _CountingController(Controller):
    def factory(self) -> SMTP:
        return _CountingSMTP(self.handler, **self.SMTP_kwargs)


class CountingSink:
    """An SMTP server that accepts everything and only counts (a kept 40 kB PDF per mail would grow us)."""

    def __init__(self) -> None:
        self.received = 0
        self.port = free_port()
        self._controller = _CountingController(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook name
        self.received += 1
        return "250 OK"

    def __enter__(self) -> CountingSink:
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()


# --- seeding ------------------------------------------------------------------------------------------


async def seed(dsn: str, customers: int, positions: int, now: dt.datetime) -> None:
    """N due customers with M open positions each (and a usage record for every tenth), via COPY."""
    conn = await asyncpg.connect(dsn)
    try:
        service_type, plan = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            "INSERT INTO service_types (id, tenant_id, key, name, provider, config_schema, is_active, created_at,"
            " updated_at) VALUES ($1, $2, 'vm', 'Cloud server', 'hetzner', '{}', true, $3, $3)",
            service_type, TENANT, now)
        await conn.execute(
            "INSERT INTO service_plans (id, tenant_id, service_type_id, name, billing_interval_type,"
            " billing_interval_value, cancel_at_period_end, min_commitment_days, notice_days,"
            " provider_config_defaults, ordering_highlights, allow_customer_location_selection, is_active,"
            " created_at, updated_at) VALUES ($1, $2, $3, 'S', 'month', 1, false, 0, 0, '{}', '[]', false, true,"
            " $4, $4)", plan, TENANT, service_type, now)
        day = billing_today(now)
        recorded = now - dt.timedelta(hours=1)
        batch = 5000
        for first in range(0, customers, batch):
            users, profiles, subscriptions, open_positions, usage = [], [], [], [], []
            for n in range(first, min(first + batch, customers)):
                user, subscription = uuid.uuid4(), uuid.uuid4()
                users.append((user, TENANT, f"customer{n}@bench.example", "user", 0, day, now, now))
                profiles.append((uuid.uuid4(), TENANT, user, "Kim", f"Customer {n}", "Hauptstraße 1", "10115",
                                 "Berlin", "DE", f"customer{n}@bench.example", now, now))
                subscriptions.append((subscription, TENANT, f"SUB-{n:07d}", plan, user, "active", Decimal("12.34"),
                                      "EUR", now, now))
                for k in range(positions):
                    start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=31 * k)
                    kind = "final" if k == positions - 1 and n % 3 == 0 else "recurring"
                    open_positions.append((uuid.uuid4(), TENANT, subscription, user, kind,
                                           f"Cloud server S ({kind})", start, start + dt.timedelta(days=30),
                                           Decimal("12.3400"), "EUR", recorded))
                if n % 10 == 0:
                    usage.append((uuid.uuid4(), TENANT, subscription, user, recorded - dt.timedelta(days=30), recorded,
                                  "bench", json.dumps({"units": 3, "unitPrice": "1.25"}), Decimal("3.7500"), recorded))
            async with conn.transaction():
                await conn.copy_records_to_table("users", records=users, columns=[
                    "id", "tenant_id", "email", "role", "password_reset_failed_attempts", "billing_day_of_month",
                    "created_at", "updated_at"])
                await conn.copy_records_to_table("customer_profiles", records=profiles, columns=[
                    "id", "tenant_id", "user_id", "first_name", "last_name", "address_line1", "postal_code", "city",
                    "country", "email", "created_at", "updated_at"])
                await conn.copy_records_to_table("subscriptions", records=subscriptions, columns=[
                    "id", "tenant_id", "number", "plan_id", "user_id", "status", "period_price", "currency",
                    "created_at", "updated_at"])
                await conn.copy_records_to_table("open_positions", records=open_positions, columns=[
                    "id", "tenant_id", "subscription_id", "user_id", "kind", "description", "period_start",
                    "period_end", "amount", "currency", "created_at"])
                await conn.copy_records_to_table("usage_records", records=usage, columns=[
                    "id", "tenant_id", "subscription_id", "user_id", "period_start", "period_end", "usage_source",
                    "usage_payload", "amount", "created_at"])
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


# --- the run ------------------------------------------------------------------------------------------


def environment(database_url: str, smtp_port: int, data_dir: Path, prefix: str, concurrency: int) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "SMTP_"))},
        "AUTHENTICATION_METHOD": "users", "JWT_SECRET": "bench-jwt-secret-0123456789abcdef",
        "ENCRYPTION_KEY": base64.b64encode(b"b" * 32).decode(), "DATABASE_URL": database_url,
        "REDIS_URL": "redis://127.0.0.1:6379/0", "REDIS_KEY_PREFIX": prefix, "QUEUE_WORKER_CONCURRENCY": str(concurrency),
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port), "DECABILL_DATA_DIR": str(data_dir),
        "BILLING_ISSUER_NAME": "Bench Hosting GmbH", "BILLING_ISSUER_VAT_ID": "DE123456789",
        "BILLING_ISSUER_ADDRESS_LINE1": "Hauptstraße 1", "BILLING_ISSUER_POSTAL_CODE": "10115",
        "BILLING_ISSUER_CITY": "Berlin", "BILLING_ISSUER_IBAN": "DE89370400440532013000",
        "BILLING_ISSUER_BIC": "COBADEFF", "BILLING_ISSUER_BANK": "Example Bank AG", "LOG_LEVEL": "info",
    }


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak RSS) of a process, in KiB."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount = line.split(":")
                values[key] = int(amount.split()[0])
    except OSError:
        pass
    return values


async def send_billing_day(env: dict[str, str]) -> None:
    """Send the coordinator once through the workers' Redis stream, as the scheduler does on its interval."""
    os.environ.update(env)
    from decabill.config import get_settings
    from decabill.jobs.queue import enqueue, get_broker

    get_settings.cache_clear()
    broker = get_broker()
    await broker.startup()
    try:
        await enqueue("invoicing.bill_due_users")
    finally:
        await broker.shutdown()


# The progress is watched without counting the big tables every second: three `count(*)` over tables growing to
# 100,000 rows (1,000,000 lines) per second took ~0.15 s of PostgreSQL CPU per second at 100,000 — on the cores
# the workers run on. Issued: the invoice number counters (gapless: their value is the number issued). Mailed:
# the SMTP sink's own count, in this process. Only when the sink has every mail are the rows counted, and the
# times to all PDFs / all mails then read from the rows' own timestamps (`rendered_at`, `sent_at`: exact, not
# rounded up to the next poll).
ISSUED = "SELECT coalesce(sum(last_value), 0) FROM number_sequences WHERE name LIKE 'invoice-%'"
DONE = ("SELECT (SELECT count(*) FROM invoice_documents WHERE rendered_at IS NOT NULL),"
        " (SELECT count(*) FROM mail_deliveries WHERE kind = 'invoice_issued' AND status = 'sent')")
LAST = ("SELECT (SELECT max(rendered_at) FROM invoice_documents),"
        " (SELECT max(sent_at) FROM mail_deliveries WHERE kind = 'invoice_issued')")


def unit_seconds(log_paths: list[Path]) -> tuple[list[float], list[float]]:
    """From the workers' logs: the seconds of every billing unit (`invoicing.user_billed`: one customer before
    the batches; `invoicing.batch_billed`: one batch — every invoice of it is committed when it ends), and
    the cost per invoice (a unit's seconds / its invoices)."""
    seconds, per_invoice = [], []
    for path in log_paths:
        for line in path.read_text(errors="replace").splitlines():
            if '"invoicing.user_billed"' in line or '"invoicing.batch_billed"' in line:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                value = entry.get("seconds")
                if value is not None:
                    seconds.append(float(value))
                    count = entry.get("invoices")
                    count = len(count) if isinstance(count, list) else int(count or 1)
                    per_invoice.append(float(value) / max(1, count))
    return seconds, per_invoice


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def children(pid: int) -> list[int]:
    """The child processes of `pid` (a worker's render pool)."""
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    except OSError:
        pass
    return found


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def run(args: argparse.Namespace) -> None:
    admin_dsn = args.pg_url
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{args.database}"
    database_url = dsn.replace("postgresql://", "postgresql+asyncpg://")
    now = dt.datetime.now(dt.timezone.utc)
    print(f"load average at start: {load()}")
    started = time.perf_counter()
    await recreate_database(admin_dsn, args.database)
    from decabill.migrations import migrate

    await migrate(database_url)
    await seed(dsn, args.customers, args.positions, now)
    print(f"seeded {args.customers} customers × {args.positions} positions in {time.perf_counter() - started:.1f} s")

    data_dir = Path(tempfile.mkdtemp(prefix="decabill-bench-"))
    workers: list[subprocess.Popen] = []
    logs = [data_dir / f"worker{i}.log" for i in range(args.workers)]
    with CountingSink() as sink:
        env = environment(database_url, sink.port, data_dir, f"bench-{uuid.uuid4().hex[:8]}", args.concurrency)
        try:
            for log_path in logs:
                with log_path.open("wb") as log:
                    workers.append(subprocess.Popen([DECABILL, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT))
            await asyncio.sleep(3)  # the workers join the consumer group
            rss_start = {w.pid: memory_kib(w.pid).get("VmRSS", 0) for w in workers}
            began, began_at = time.perf_counter(), dt.datetime.now(dt.timezone.utc)
            await send_billing_day(env)
            all_issued = all_done = all_rendered = all_mailed = None
            issued = rendered = mailed = 0
            conn = await asyncpg.connect(dsn)
            try:
                while time.perf_counter() - began < args.timeout:
                    await asyncio.sleep(1)
                    issued = await conn.fetchval(ISSUED)
                    elapsed = time.perf_counter() - began
                    if all_issued is None and issued >= args.customers:
                        all_issued = elapsed
                        if args.issue_only:
                            break
                    if sink.received >= args.customers:
                        rendered, mailed = await conn.fetchrow(DONE)
                        if rendered >= args.customers and mailed >= args.customers:
                            last_rendered, last_mailed = await conn.fetchrow(LAST)
                            all_rendered = (last_rendered - began_at).total_seconds()
                            all_mailed = (last_mailed - began_at).total_seconds()
                            all_done = max(all_rendered, all_mailed)
                            break
                    if args.verbose:
                        print(f"  {elapsed:7.1f} s  issued {issued}  mailed (SMTP) {sink.received}  load {load()}",
                              flush=True)
                    if any(w.poll() is not None for w in workers):
                        print("a worker exited:", [log.read_text()[-2000:] for log in logs])
                        break
                if all_done is None:
                    rendered, mailed = await conn.fetchrow(DONE)
            finally:
                await conn.close()
            memory = {w.pid: memory_kib(w.pid) for w in workers}
            pools = {w.pid: [memory_kib(child) for child in children(w.pid)] for w in workers}
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    worker.kill()
    seconds, per_invoice = unit_seconds(logs)
    issue_time = all_issued or (time.perf_counter() - began)
    print(f"customers {args.customers}  positions/customer {args.positions}  workers {args.workers}"
          f" (concurrency {args.concurrency} each)")
    print(f"invoices issued: {issued}  PDFs: {rendered}  mails sent: {mailed}  (SMTP sink received {sink.received})")
    print(f"invoices issued per second: {issued / issue_time:.1f}")
    print(f"time to all invoices issued: {'%.1f s' % all_issued if all_issued else 'not reached'}")
    print(f"time to all PDFs and mails done: {'%.1f s' % all_done if all_done else 'not reached'}"
          f"  (all PDFs: {'%.1f s' % all_rendered if all_rendered else 'not reached'}, all mails:"
          f" {'%.1f s' % all_mailed if all_mailed else 'not reached'})")
    if all_done and all_issued:
        print(f"PDFs + mails per second after the last invoice: {args.customers / max(0.1, all_done - all_issued):.1f}"
              f"  (over the whole run: {args.customers / all_done:.1f})")
    print(f"billing unit (issue to commit of each invoice): p50 {percentile(seconds, 0.5) * 1000:.0f} ms  p99 "
          f"{percentile(seconds, 0.99) * 1000:.0f} ms  (units n={len(seconds)}, mean "
          f"{(statistics.fmean(seconds) if seconds else float('nan')) * 1000:.0f} ms)")
    print(f"unit time per invoice: p50 {percentile(per_invoice, 0.5) * 1000:.1f} ms  p99 "
          f"{percentile(per_invoice, 0.99) * 1000:.1f} ms")
    for pid, values in memory.items():
        print(f"worker {pid}: RSS start {rss_start[pid] / 1024:.0f} MiB  end {values.get('VmRSS', 0) / 1024:.0f} MiB"
              f"  peak {values.get('VmHWM', 0) / 1024:.0f} MiB")
        for child in pools.get(pid, []):
            print(f"  its child process (render pool): RSS end {child.get('VmRSS', 0) / 1024:.0f} MiB"
                  f"  peak {child.get('VmHWM', 0) / 1024:.0f} MiB")
    print(f"load average at the end: {load()}")
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        finally:
            await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="The billing day at scale (issue #19).")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--positions", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=5, help="QUEUE_WORKER_CONCURRENCY of each worker")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--database", default="decabill_bench")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the database and the PDFs afterwards")
    parser.add_argument("--issue-only", action="store_true",
                        help="stop once every invoice is issued (PDFs and mails: as far as they got)")
    parser.add_argument("--verbose", action="store_true", help="print the progress every second")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
