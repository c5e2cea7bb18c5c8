"""API hot-path benchmark: Decabill against a bare Starlette + asyncpg baseline, same tables, same JSON.

    .venv/bin/python bench/api.py                 # 50 plans, 10,000 customers, 100,000 invoices, 20,000 subscriptions
    .venv/bin/python bench/api.py --quick         # 2,000 customers / 20,000 invoices, 5 s per run (a smoke check)
    .venv/bin/python bench/api.py --workers 2     # both servers with two processes (the image's default on 2 cores)
    .venv/bin/python bench/api.py --rounds 3      # every endpoint three times, both servers in turn: medians and ranges
    .venv/bin/python bench/api.py --log-level info   # Decabill at LOG_LEVEL=info (production), a log line per request
    .venv/bin/python bench/api.py --pg-socket /var/run/postgresql   # both servers on PostgreSQL's Unix socket

Needs PostgreSQL (BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432) and `wrk` (Debian package `wrk`;
without it a small Python load generator is used, which saturates one core itself and reads lower). It creates the
database `decabill_bench_api` (`--database`) afresh, seeds it through the models, starts `decabill serve` (the
production event loop, `WEB_CONCURRENCY` = `--workers`) and the baseline (bench/api_baseline.py, uvloop +
httptools, as many uvicorn workers) on free ports. Every endpoint — the public offerings and the authenticated
hot reads, with the users-mode tokens Decabill issued, which the baseline verifies too — is driven on both servers
at c=10 and c=50; it prints req/s, p50/p99 latency, the servers' RSS and their CPU time per request (user +
system from /proc during the run: on this shared host it moves less between runs than req/s), then per endpoint
Decabill's figures against the bare server's and their ratio. Before driving, it checks that both answer 200 with the same fields.
Run it on a quiet machine: the load generator shares the two cores with the server under test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if not __package__:  # run as `python bench/api.py`: `bench.…` from the repository's root
    sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
DATABASE = os.environ.get("BENCH_DATABASE", "decabill_bench_api")  # --database: your own on a shared server
JWT_SECRET = "b" * 64  # Decabill's, and the baseline's to verify the same tokens
ADMIN_EMAIL, CUSTOMER_EMAIL, PASSWORD = "bench-admin@example.com", "bench-customer@example.com", "bench-password-1"
ENCRYPTION_KEY = "dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0dGVzdHRlc3Q="  # production settings require one


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- seeding -------------------------------------------------------------------------------------------------


async def recreate_database() -> str:
    from bench.pg import recreate_database as recreate

    await recreate(f"{PG_URL}/postgres", DATABASE)
    return f"{PG_URL.replace('postgresql://', 'postgresql+asyncpg://')}/{DATABASE}"


async def seed(url: str, *, plans: int, customers: int, invoices: int, subscriptions: int) -> None:
    """Catalogue, customers, subscriptions and issued invoices, inserted through the models in chunks."""
    import bcrypt
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    import models  # noqa: F401  (every table registered)
    from decabill.migrations import migrate
    from models.catalog import ServicePlan, ServiceType
    from models.identity import User
    from models.invoicing import Invoice, InvoiceLine
    from models.subscriptions import Subscription

    await migrate(url)
    engine = create_async_engine(url)
    rng = random.Random(20)
    now = dt.datetime.now(dt.timezone.utc)
    password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()

    async def insert(rows: list) -> None:
        for start in range(0, len(rows), 5000):
            async with AsyncSession(engine, expire_on_commit=False) as session:
                session.add_all(rows[start:start + 5000])
                await session.commit()

    service_type = ServiceType(tenant_id="default", key="hosting", name="Managed hosting", provider="manual")
    await insert([service_type])
    plan_rows = [ServicePlan(tenant_id="default", service_type_id=service_type.id, name=f"Plan {n}",
                             description=f"Plan number {n}", billing_interval_type="month", billing_interval_value=1,
                             base_price=Decimal(rng.randint(300, 9000)) / 100, margin_percent=Decimal("10"),
                             margin_fixed=Decimal("1"), ordering_highlights=[{"label": "CPU", "value": f"{n % 8 + 1}"}],
                             created_at=now - dt.timedelta(minutes=n)) for n in range(plans)]
    await insert(plan_rows)

    users = [User(tenant_id="default", email=ADMIN_EMAIL, password_hash=password_hash, role="admin",
                  email_confirmed_at=now),
             User(tenant_id="default", email=CUSTOMER_EMAIL, password_hash=password_hash, role="user",
                  email_confirmed_at=now)]
    users += [User(tenant_id="default", email=f"customer{n}@example.com", password_hash=password_hash, role="user",
                   email_confirmed_at=now) for n in range(customers - 1)]
    await insert(users)
    customer_ids = [u.id for u in users[1:]]

    subs = []
    for n in range(subscriptions):
        user_id = customer_ids[0] if n < 5 else rng.choice(customer_ids)
        start = now - dt.timedelta(days=rng.randint(1, 700))
        subs.append(Subscription(tenant_id="default", number=f"SUB-{n + 1:08d}", plan_id=rng.choice(plan_rows).id,
                                 user_id=user_id, status="active", current_period_start=start,
                                 current_period_end=start + dt.timedelta(days=30), activated_at=start,
                                 # billed ahead: the scheduler of the server under test has nothing to do
                                 next_billing_at=now + dt.timedelta(days=rng.randint(1, 30)), period_price=Decimal("12.50"),
                                 created_at=start))
    await insert(subs)

    # most invoices name one of their owner's subscriptions, as billing-day invoices name their first group's
    # (behavior.md); the owner's n-th invoice the (n mod k)-th of its k subscriptions, drawing nothing from `rng`
    subscriptions_of: dict[Any, list[Any]] = {}
    for subscription in subs:
        subscriptions_of.setdefault(subscription.user_id, []).append(subscription.id)
    invoice_rows, line_rows = [], []
    for n in range(invoices):
        user_id = customer_ids[0] if n < 20 else rng.choice(customer_ids)
        issued = now - dt.timedelta(days=rng.randint(1, 700), seconds=n)
        net = Decimal(rng.randint(100, 50000)) / 100
        tax = (net * Decimal("0.19")).quantize(Decimal("0.01"))
        paid = rng.random() < 0.8
        if n < 20:  # the bench customer's invoices, listed per subscription
            subscription_id = subs[n % 5].id
        else:
            owned = subscriptions_of.get(user_id)
            subscription_id = owned[n % len(owned)] if owned else None
        invoice = Invoice(tenant_id="default", user_id=user_id, subscription_id=subscription_id, origin="billing_run",
                          invoice_number=f"INV-{issued.year}-{n + 1:06d}", status="paid" if paid else "issued",
                          subtotal_net=net, tax_total=tax, total_gross=net + tax, amount_paid=net + tax if paid else 0,
                          balance_due=0 if paid else net + tax, issued_at=issued,
                          due_date=(issued if paid else now).date() + dt.timedelta(days=14),
                          paid_at=issued + dt.timedelta(days=3) if paid else None, created_at=issued,
                          buyer={"company": f"Customer {n % 997} GmbH"})
        invoice_rows.append(invoice)
        line_rows.append(InvoiceLine(tenant_id="default", invoice_id=invoice.id, position=0, description="Hosting",
                                     quantity=Decimal(1), unit_price_net=net, tax_rate=Decimal(19), line_net=net,
                                     line_tax=tax, line_gross=net + tax))
    await insert(invoice_rows)
    await insert(line_rows)
    await engine.dispose()
    await vacuum(url)


async def vacuum(url: str) -> None:
    """VACUUM ANALYZE, as autovacuum would have done by the time a real database has grown this big: statistics
    for the planner, the visibility map for index-only scans, and the GIN pending lists of the trigram indexes
    merged (with 100,000 invoices just inserted, a search read every pending entry: ~7 ms per branch)."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


# --- servers -------------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    base: str

    def pids(self) -> list[int]:
        """The process and its children (uvicorn workers)."""
        pids = [self.process.pid]
        with contextlib.suppress(FileNotFoundError):
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            pids += [int(p) for p in children]
        return pids

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the process and its children have used so far."""
        ticks = 0
        for pid in self.pids():
            with contextlib.suppress(FileNotFoundError):
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        """Resident memory of the process and its children (uvicorn workers), in MB."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(FileNotFoundError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total / 1024

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def wait_ready(server: Server, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited with {server.process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(server.base + path, timeout=2).status_code < 500:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"{server.name} did not answer within {timeout} s")
        time.sleep(0.2)


def start_decabill(url: str, workdir: Path, workers: int, log_level: str = "warning",
                   keep_pages: bool = True) -> Server:
    """`decabill serve` at `log_level`; its output goes to decabill.log in `workdir` (a file, not a terminal).
    Without `keep_pages` it keeps no admin page (ADMIN_PAGE_CACHE_BYTES=0): every admin read is a first read."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "AUTHENTICATION_METHOD": "users", "JWT_SECRET": JWT_SECRET,
           "HOST": "127.0.0.1", "PORT": str(port), "WEBSOCKET_PORT": "0", "RATE_LIMIT_ENABLED": "false",
           "LOG_LEVEL": log_level, "NODE_ENV": "production", "WEB_CONCURRENCY": str(workers), "SMTP_HOST": "",
           "ENCRYPTION_KEY": ENCRYPTION_KEY}
    if not keep_pages:
        env["ADMIN_PAGE_CACHE_BYTES"] = "0"
    log = (workdir / "decabill.log").open("wb")
    process = subprocess.Popen([str(BIN / "decabill"), "serve", "--no-socket"], env=env, cwd=workdir,
                               stdout=log, stderr=subprocess.STDOUT)
    server = Server("decabill", process, f"http://127.0.0.1:{port}")
    wait_ready(server, "/api/health")
    return server


def start_baseline(dsn: str, workdir: Path, workers: int) -> Server:
    port = free_port()
    env = {**os.environ, "BENCH_DSN": dsn, "BENCH_JWT_SECRET": JWT_SECRET}
    log = (workdir / "baseline.log").open("wb")
    process = subprocess.Popen([str(BIN / "python"), "-m", "uvicorn", "api_baseline:app", "--app-dir", str(ROOT / "bench"),
                                "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                                "--workers", str(workers), "--no-access-log", "--log-level", "warning"],
                               env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    server = Server("bare", process, f"http://127.0.0.1:{port}")
    wait_ready(server, "/api/public/service-plan-offerings?limit=1")
    return server


def same_fields(ours: object, bare: object) -> str | None:
    """Where the two answers' JSON differ in shape (the field names of the object or of the first item)."""
    def fields(body: object) -> set[str]:
        if isinstance(body, dict) and isinstance(body.get("items"), list):
            return set(body) | {f"items.{key}" for key in (body["items"][0] if body["items"] else {})}
        if isinstance(body, list):
            return set(body[0]) if body else set()
        return set(body) if isinstance(body, dict) else set()
    if isinstance(ours, list) and isinstance(bare, list) and len(ours) != len(bare):
        return f"{len(ours)} items vs {len(bare)}"
    missing, extra = fields(ours) - fields(bare), fields(bare) - fields(ours)
    return f"bare lacks {sorted(missing)}, has more {sorted(extra)}" if missing or extra else None


# --- load ----------------------------------------------------------------------------------------------------


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_us: float = 0.0  # the server's CPU time per request during the run (µs): less noisy than req/s here


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def drive(url: str, *, connections: int, seconds: int, headers: dict[str, str]) -> Result:
    wrk = shutil.which("wrk")
    if wrk is None:
        return asyncio.run(_drive_python(url, connections=connections, seconds=seconds, headers=headers))
    args = [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(g) for g in socket_errors.groups()) if socket_errors else 0
    return Result(rps, p50, p99, errors, requests)


async def _drive_python(url: str, *, connections: int, seconds: int, headers: dict[str, str]) -> Result:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal errors
        async with httpx.AsyncClient(headers=headers, timeout=10) as http:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await http.get(url)
                latencies.append(time.perf_counter() - started)
                errors += response.status_code >= 400

    await asyncio.gather(*(client() for _ in range(connections)))
    latencies.sort()
    return Result(len(latencies) / seconds, latencies[len(latencies) // 2] * 1000,
                  latencies[int(len(latencies) * 0.99)] * 1000, errors, len(latencies))


def start_profile(server: Server, out: Path, seconds: int) -> subprocess.Popen:
    """py-spy recording the server (and its worker processes) for the load run, collapsed stacks into `out`."""
    return subprocess.Popen([str(BIN / "py-spy"), "record", "--subprocesses", "--rate", "200", "--duration",
                             str(seconds), "--format", "raw", "--output", str(out), "--pid", str(server.process.pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def print_profile(spy: subprocess.Popen, out: Path, top: int = 25) -> None:
    """The functions holding most samples, inclusive (anywhere on the stack) and exclusive (on top); the raw
    collapsed stacks are kept as bench-profile.txt in the working directory (for a flame graph or a closer look)."""
    spy.wait(timeout=60)
    shutil.copyfile(out, Path.cwd() / "bench-profile.txt")
    inclusive: dict[str, int] = {}
    exclusive: dict[str, int] = {}
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        # "function (path/file.py:line)" -> "function (file.py)": one entry per function
        frames = [re.sub(r" \(.*?([^/]+/[^/]+\.py):\d+\)$", r" (\1)", f) for f in stack.split(";")]
        samples = int(count)
        total += samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
        exclusive[frames[-1]] = exclusive.get(frames[-1], 0) + samples
    for title, table in (("inclusive", inclusive), ("exclusive", exclusive)):
        print(f"  profile, {title} ({total} samples):")
        for frame, samples in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {100 * samples / total:5.1f} %  {frame[:150]}")


def endpoints(subscription_id: str, customer: str, admin: str) -> list[tuple[str, str, str | None]]:
    """(name, path, token) of every endpoint the benchmarks drive."""
    return [
        ("offerings", "/api/public/service-plan-offerings?limit=20", None),
        ("invoices of a subscription", f"/api/invoices/{subscription_id}", customer),
        ("open and overdue invoices", "/api/invoices/open-overdue", customer),
        ("invoices summary", "/api/invoices/summary", customer),
        ("subscriptions (customer)", "/api/subscriptions", customer),
        ("admin invoices", "/api/admin/billing/invoices?limit=20", admin),
        ("admin invoices search", "/api/admin/billing/invoices?limit=20&search=Customer%2042", admin),
        # matches the emails customer42, customer420…429, customer4200…4299: ~1,100 invoices counted, 20 shown
        ("admin invoices search email", "/api/admin/billing/invoices?limit=20&search=customer42", admin),
        # an invoice-number prefix (~40 matches): the range on ix_invoices_tenant_number_prefix (migration 0027)
        ("admin invoices search number", "/api/admin/billing/invoices?limit=20&search=INV-2026-0001", admin),
    ]


def socket_dsn(folder: str, database: str) -> str:
    """BENCH_PG_URL's user and port, through PostgreSQL's Unix socket in `folder`."""
    user = PG_URL.partition("://")[2].partition("@")[0]
    return f"postgresql://{user}@/{database}?host={folder}&port={PG_URL.rpartition(':')[2]}"


def login(base: str, email: str) -> str:
    response = httpx.post(f"{base}/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=30)
    response.raise_for_status()
    return response.json()["access_token"]


def _medians(results: list[Result]) -> list[float]:
    """req/s, p50, p99 and CPU µs per request, each the median over `results` (the rounds)."""
    return [statistics.median(getattr(result, field) for result in results)
            for field in ("rps", "p50_ms", "p99_ms", "cpu_us")]


def print_summary(targets: list[tuple[str, str, str | None]], figures: dict[tuple[str, str, int], list[Result]],
                  rounds: int) -> None:
    """Per endpoint and connections, Decabill's figures next to the bare server's and their ratio. Over several
    rounds each figure is the median of its rounds and the ratio the median of the rounds' ratios (each round's
    pair was driven minutes apart at most), with the range of Decabill's req/s and p99 and of the ratio."""
    print(f"\n{'endpoint':30} {'c':>3} {'decabill req/s (p50 / p99 ms)':>30} {'bare req/s (p50 / p99 ms)':>28} "
          f"{'ratio':>6} {'CPU µs decabill / bare':>22}" + ("   over the rounds: decabill req/s, p99 ms, ratio"
                                                              if rounds > 1 else ""))
    for name, _path, _token in targets:
        for connections in (10, 50):
            ours, bare = figures[(name, "decabill", connections)], figures[(name, "bare", connections)]
            ratios = [o.rps / b.rps for o, b in zip(ours, bare)]
            o_rps, o_p50, o_p99, o_cpu = _medians(ours)
            b_rps, b_p50, b_p99, b_cpu = _medians(bare)
            spread = ""
            if rounds > 1:
                spread = (f"   {min(r.rps for r in ours):,.0f}-{max(r.rps for r in ours):,.0f}, "
                          f"{min(r.p99_ms for r in ours):.1f}-{max(r.p99_ms for r in ours):.1f}, "
                          f"{min(ratios):.2f}-{max(ratios):.2f}")
            print(f"{name:30} {connections:>3} {o_rps:>11,.0f} ({o_p50:.1f} / {o_p99:.1f}) "
                  f"{b_rps:>11,.0f} ({b_p50:.1f} / {b_p99:.1f}) {statistics.median(ratios):>6.2f} "
                  f"{o_cpu:>11.0f} / {b_cpu:.0f}{spread}")
    print(json.dumps({f"{k[0]}|{k[1]}|c{k[2]}": round(statistics.median(r.rps for r in v)) for k, v in figures.items()}))


def main() -> None:
    global DATABASE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data set, 5 s runs")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each load run")
    parser.add_argument("--workers", type=int, default=1, help="WEB_CONCURRENCY of decabill serve (default 1)")
    parser.add_argument("--skip-seed", action="store_true", help="reuse the database of the previous run")
    parser.add_argument("--only", help="comma-separated subset of endpoint names to drive")
    parser.add_argument("--rounds", type=lambda text: max(int(text), 1), default=1,
                        help="drive every endpoint this many times, both servers in turn each time, and summarise "
                             "each figure as its median (and range) over the rounds: on a shared host one run's "
                             "req/s moves by 10-30 %% (default 1)")
    parser.add_argument("--profile", help="endpoint name: record Decabill with py-spy during its run "
                        "(--profile-connections) and print the hottest functions (needs py-spy)")
    parser.add_argument("--profile-connections", type=int, default=10, choices=(10, 50),
                        help="the run --profile records (default %(default)s connections)")
    parser.add_argument("--no-page-cache", action="store_true",
                        help="Decabill keeps no admin page (ADMIN_PAGE_CACHE_BYTES=0): the admin reads are measured "
                             "as first reads, each one running its statement (the baseline keeps none either)")
    parser.add_argument("--database", default=DATABASE, help="database to (re)create (default %(default)s)")
    parser.add_argument("--pg-socket", metavar="FOLDER", help="both servers connect through PostgreSQL's Unix socket "
                        "in FOLDER (e.g. /var/run/postgresql) instead of TCP; seeding still uses BENCH_PG_URL")
    parser.add_argument("--log-level", default="warning", help="Decabill's LOG_LEVEL (default %(default)s, as the "
                        "earlier figures; `info`, production's default, writes a line per request to its log file)")
    args = parser.parse_args()
    DATABASE = args.database
    sizes = dict(plans=50, customers=2_000, invoices=20_000, subscriptions=4_000) if args.quick else \
        dict(plans=50, customers=10_000, invoices=100_000, subscriptions=20_000)
    seconds = 5 if args.quick else args.seconds

    url = f"{PG_URL.replace('postgresql://', 'postgresql+asyncpg://')}/{DATABASE}"
    if not args.skip_seed:
        started = time.monotonic()
        url = asyncio.run(recreate_database())
        asyncio.run(seed(url, **sizes))
        print(f"seeded {sizes} in {time.monotonic() - started:.0f} s")

    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    dsn = f"{PG_URL}/{DATABASE}"
    if args.pg_socket:
        dsn = socket_dsn(args.pg_socket, DATABASE)
        url = dsn.replace("postgresql://", "postgresql+asyncpg://")
    decabill = start_decabill(url, workdir, args.workers, args.log_level, keep_pages=not args.no_page_cache)
    baseline = start_baseline(dsn, workdir, args.workers)
    try:
        customer, admin = login(decabill.base, CUSTOMER_EMAIL), login(decabill.base, ADMIN_EMAIL)
        first_subscription = httpx.get(f"{decabill.base}/api/subscriptions", headers={"Authorization": f"Bearer {customer}"},
                                       timeout=30).json()[0]["id"]
        targets = endpoints(first_subscription, customer, admin)
        if args.only:
            wanted = set(args.only.split(","))
            targets = [t for t in targets if t[0] in wanted]
        load = os.getloadavg()
        print(f"{time.strftime('%H:%M:%S', time.gmtime())} UTC, load average before the runs: {load[0]:.2f} "
              f"{load[1]:.2f} {load[2]:.2f}; workers: {args.workers} each; Decabill's LOG_LEVEL: {args.log_level}; admin pages kept: {'no' if args.no_page_cache else 'yes'}; wrk: {shutil.which('wrk') or 'no (python generator)'}; "
              f"PostgreSQL: {'Unix socket in ' + args.pg_socket if args.pg_socket else 'TCP'}")
        print(f"{'endpoint':30} {'server':9} {'c':>3} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'RSS MB':>7} {'CPU µs':>8}")
        figures: dict[tuple[str, str, int], list[Result]] = {}
        for name, path, token in targets:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            answers = {}
            for server in (decabill, baseline):
                check = httpx.get(server.base + path, headers=headers, timeout=30)
                assert check.status_code == 200, f"{name} on {server.name}: {check.status_code} {check.text[:300]}"
                answers[server.name] = check.json()
            difference = same_fields(answers["decabill"], answers["bare"])
            if difference:
                print(f"  note: {name}: the answers differ: {difference}")
            for round_ in range(args.rounds):
                for server in (decabill, baseline):
                    if round_ == 0:
                        drive(server.base + path, connections=10, seconds=2, headers=headers)  # warm-up
                    for connections in (10, 50):
                        profiling = (args.profile == name and server is decabill and round_ == 0
                                     and connections == args.profile_connections)
                        spy = start_profile(server, workdir / f"profile-{len(figures)}.txt", seconds) if profiling else None
                        cpu_before = server.cpu_seconds()
                        result = drive(server.base + path, connections=connections, seconds=seconds, headers=headers)
                        result.cpu_us = (server.cpu_seconds() - cpu_before) * 1e6 / max(result.requests, 1)
                        if spy is not None:
                            print_profile(spy, workdir / f"profile-{len(figures)}.txt")
                        figures.setdefault((name, server.name, connections), []).append(result)
                        print(f"{name:30} {server.name:9} {connections:>3} {result.rps:>8.0f} {result.p50_ms:>8.1f} "
                              f"{result.p99_ms:>8.1f} {result.errors:>6} {server.rss_mb():>7.0f} {result.cpu_us:>8.0f}",
                              flush=True)
        load = os.getloadavg()
        print(f"{time.strftime('%H:%M:%S', time.gmtime())} UTC, load average after the runs: {load[0]:.2f} "
              f"{load[1]:.2f} {load[2]:.2f}")
        print_summary(targets, figures, args.rounds)
    finally:
        decabill.stop()
        baseline.stop()

if __name__ == "__main__":
    main()
