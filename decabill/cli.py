"""The `decabill` console command: serve, socket, worker, migrate, create-admin, jobs, bill-day, doctor,
contract-test."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import signal
import socket as socket_module
import sys
from pathlib import Path
from typing import NoReturn

import structlog
import uvicorn

from decabill import collector
from decabill.config import ConfigurationError, Settings, get_settings
from decabill.web.protocol import OneWriteHttpProtocol

log = structlog.get_logger("decabill")


class _Server(uvicorn.Server):
    """uvicorn.Server whose signal handling we own: one SIGTERM must stop every listener of the process."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class _BoundServer(_Server):
    """A listener on a socket bound beforehand (the metrics port: whether it can be bound decides what to do)."""

    def __init__(self, config: uvicorn.Config, sock) -> None:
        super().__init__(config)
        self._socket = sock

    async def serve(self, sockets=None) -> None:
        await super().serve(sockets=[self._socket])


def _run(main) -> None:
    """Run the process's main coroutine on uvloop (what uvicorn's `--loop auto` would pick) where installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard] on Linux and macOS
        asyncio.run(main)
    else:
        uvloop.run(main)


def _load_settings() -> Settings:
    try:
        settings = get_settings()
        from decabill.providers import init_registry

        init_registry(settings)  # a broken plugin stops start-up here when DYNAMIC_PROVIDERS_FAIL_FAST=true
        from decabill.payments import init_payment_processors

        init_payment_processors(settings)  # the same for payment processor plugins
        return settings
    except ConfigurationError as exc:
        print(f"decabill: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _fail(message: str) -> NoReturn:
    """A configuration the process cannot start with: one line naming the variable or the target, exit 2."""
    print(f"decabill: {message}", file=sys.stderr)
    raise SystemExit(2)


def _unwritable_because(folder: Path) -> str | None:
    """Why `folder` cannot be written (None when it can, or when it can be created there): checked without
    creating anything, since a command may not need the folder after all."""
    folder = folder.absolute()
    existing = next((f for f in (folder, *folder.parents) if f.exists()), Path("/"))
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


async def _check_storage(settings: Settings) -> None:
    """Before anything touches them: the data folder (when something lives there) can be written, and the
    database answers."""
    uses_data_dir = (settings.database_is_embedded_default or settings.encryption_key is None
                     or not settings.billing_invoice_pdf_storage_path_raw)
    if uses_data_dir and (problem := _unwritable_because(settings.data_dir)):
        _fail(f"DECABILL_DATA_DIR={settings.data_dir}: the data folder cannot be written ({problem})")
    if settings.database_is_embedded_default:
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # the embedded database's home; any other must exist
    from decabill import db

    if problem := await db.unusable_reason(settings.database_url):
        _fail(f"{settings.database_variables}: {problem}")


async def _run_servers(servers: list) -> None:
    """Serve until SIGTERM/SIGINT; without servers (worker/scheduler roles) just wait for the signal."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def stop() -> None:
        stopping.set()
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    if servers:
        await asyncio.gather(*(server.serve() for server in servers))
    else:
        await stopping.wait()


def _uvicorn_config(app, host: str | None, port: int | None, trusted_proxies: list[str], **listener) -> uvicorn.Config:
    # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise; that let anyone on the host (or
    # behind a proxy that does not set the header) choose their address for the rate limiter.
    if host is not None:
        listener.update(host=host, port=port)
    # no `server: uvicorn` header: an answer need not name the software behind it
    return uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", server_header=False, **listener,
                          proxy_headers=bool(trusted_proxies), forwarded_allow_ips=trusted_proxies or None)


def _api_config(app, host: str | None, port: int | None, trusted_proxies: list[str], **listener) -> uvicorn.Config:
    """The API's listener: what a response writes in one step of the event loop goes out as one write
    (decabill/web/protocol.py)."""
    return _uvicorn_config(app, host, port, trusted_proxies, http=OneWriteHttpProtocol, **listener)


def _http_socket(host: str, port: int) -> socket_module.socket:
    """The API's listening socket, bound once by the main process and shared with its HTTP workers."""
    family = socket_module.AF_INET6 if ":" in host else socket_module.AF_INET
    sock = socket_module.socket(family, socket_module.SOCK_STREAM)
    sock.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"PORT {port} on HOST {host} cannot be used ({exc.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _HttpWorkers:
    """The extra HTTP processes of WEB_CONCURRENCY: `decabill serve --http-fd N` children answering on the main
    process's socket (the kernel spreads connections). They serve the API only: the scheduler, the Socket.IO
    gateway and /metrics stay in the main process; jobs they enqueue go to Redis, or run in the child itself on
    the embedded in-process queue. A child that dies is started again."""

    def __init__(self, count: int, sock: socket_module.socket) -> None:
        self.count, self.sock = count, sock
        self.children: list[asyncio.subprocess.Process] = []
        self._supervisor: asyncio.Task | None = None
        self._stopping = False

    async def _spawn(self) -> asyncio.subprocess.Process:
        fd = self.sock.fileno()
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "decabill.cli", "serve", "--http-fd", str(fd), pass_fds=(fd,))

    async def start(self) -> None:
        self.children = [await self._spawn() for _ in range(self.count)]
        self._supervisor = asyncio.create_task(self._supervise(), name="decabill-http-workers")
        log.info("http.workers_started", workers=self.count + 1, pids=[child.pid for child in self.children])

    async def _supervise(self) -> None:
        while not self._stopping:
            await asyncio.sleep(1)
            for index, child in enumerate(self.children):
                if child.returncode is not None and not self._stopping:
                    log.error("http.worker_exited", pid=child.pid, code=child.returncode, restarting=True)
                    self.children[index] = await self._spawn()

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
        for child in self.children:
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                await asyncio.wait_for(child.wait(), 30)
            except asyncio.TimeoutError:
                child.kill()
                await child.wait()


def _web_workers(settings: Settings) -> int:
    return settings.web_concurrency or os.cpu_count() or 1


async def _serve(settings: Settings, *, http: bool, socket: bool, jobs: bool = True, role: str | None = None,
                 http_fd: int | None = None) -> None:
    """One process of the given QUEUE_ROLE: `api`/`all` serve HTTP (and Socket.IO); `scheduler` sends the
    periodic coordinators; `worker`/`all` consume jobs (decabill/jobs/runtime.py). With `http_fd` it is one of
    the main process's extra HTTP workers (WEB_CONCURRENCY): the API on the inherited socket, nothing else."""
    from decabill import db
    from decabill.jobs.runtime import JobRuntime
    from decabill.migrations import migrate
    from decabill.observability import metrics, tracing
    from decabill.operations import server as metrics_server
    from decabill.operations import state
    from decabill.secrets import encryption_key

    role = role or settings.queue_role
    if jobs and role in ("worker", "scheduler") and not settings.redis_url:
        _fail(f"QUEUE_ROLE={role} needs Redis (REDIS_URL or REDIS_HOST); without it jobs run inside "
              "the `decabill serve` process that enqueues them (QUEUE_ROLE=all)")
    await _check_storage(settings)
    serves_http = role in ("api", "all")
    http, socket = http and serves_http, socket and serves_http
    encryption_key()  # resolve (or generate, D22) the key at start-up, not at the first encrypted write
    extra_workers = _web_workers(settings) - 1 if http and http_fd is None else 0
    try:
        if extra_workers and settings.metrics_port and not metrics.multiprocess_dir():
            raise ConfigurationError(
                f"WEB_CONCURRENCY={settings.web_concurrency} runs several HTTP processes: set PROMETHEUS_MULTIPROC_DIR "
                "(an empty folder) so that METRICS_PORT serves the metrics of all of them")
        metrics_socket = metrics_server.bind(settings) if http_fd is None else None
        http_socket = _http_socket(settings.host, settings.port) if extra_workers else None
    except ConfigurationError as exc:
        _fail(str(exc))
    tracing.configure(settings.otel_exporter_otlp_endpoint, role if (jobs or http) else "socket")
    if http and http_fd is None:
        await migrate(settings.database_url)  # once, by the main process, before any HTTP worker starts
    db.init_engine(settings.database_url, **settings.database_pool)
    servers = []
    if metrics_socket is not None:
        servers.append(_BoundServer(metrics_server.config(settings), metrics_socket))
    if http:
        from decabill.web.app import create_app

        app = create_app(settings)
        if http_fd is not None:
            servers.append(_Server(_api_config(app, None, None, settings.trusted_proxies, fd=http_fd)))
        elif http_socket is not None:
            config = _api_config(app, settings.host, settings.port, settings.trusted_proxies)
            servers.append(_BoundServer(config, http_socket))
        else:
            servers.append(_Server(_api_config(app, settings.host, settings.port, settings.trusted_proxies)))
    http_workers = _HttpWorkers(extra_workers, http_socket) if http_socket is not None else None
    if socket and settings.websocket_port:
        from decabill.realtime.server import create_socket_app

        servers.append(_Server(_uvicorn_config(create_socket_app(settings), settings.host, settings.websocket_port,
                                                       settings.trusted_proxies)))
    runtime = JobRuntime(settings, role) if jobs else None
    collector.tune_after_start_up()  # everything this process serves with is loaded now
    log.info(
        "decabill.starting",
        http_port=settings.port if http else None,
        websocket_port=settings.websocket_port if socket else None,
        database=settings.database_url.split("://", 1)[0],
        authentication=settings.authentication_method,
        queue_role=role if jobs else None,
        metrics_port=settings.metrics_port if metrics_socket is not None else None,
        tracing=tracing.enabled(),
    )
    if (http or runtime is not None) and (missing := settings.billing_issuer_missing):
        # Not fatal (catalog, orders and payments work), but no invoice can be issued until they are set.
        log.warning("billing.issuer_incomplete", missing=missing,
                    effect="invoices cannot be issued; billing-day positions stay open")
    # In multi-process mode the process serving /metrics cannot sample the others: each keeps its own fresh.
    sampler = asyncio.create_task(state.sample_forever()) if metrics.multiprocess_dir() else None
    try:
        if runtime is not None:
            await runtime.start()
        if http_workers is not None:
            await http_workers.start()
        await _run_servers(servers)
    finally:
        if http_workers is not None:
            await http_workers.stop()
        if runtime is not None:
            await runtime.stop()
        if sampler is not None:
            sampler.cancel()
        await db.dispose_engine()
        tracing.shutdown()
        metrics.mark_process_dead(os.getpid())
        log.info("decabill.stopped")


def cmd_serve(args: argparse.Namespace) -> None:
    settings = _load_settings()
    if args.http_fd is not None:  # an extra HTTP worker of a `decabill serve` (WEB_CONCURRENCY)
        _run(_serve(settings, http=True, socket=False, role="api", http_fd=args.http_fd))
        return
    _run(_serve(settings, http=True, socket=not args.no_socket))


def cmd_socket(_args: argparse.Namespace) -> None:
    settings = _load_settings()
    _run(_serve(settings, http=False, socket=True, jobs=False, role="api"))


def cmd_worker(_args: argparse.Namespace) -> None:
    settings = _load_settings()
    _run(_serve(settings, http=False, socket=False, role="worker"))


def cmd_migrate(_args: argparse.Namespace) -> None:
    from decabill.migrations import migrate

    settings = _load_settings()

    async def run() -> None:
        await _check_storage(settings)
        await migrate(settings.database_url)

    asyncio.run(run())
    print("database is up to date")


def cmd_create_admin(args: argparse.Namespace) -> None:
    from decabill import db
    from decabill.errors import DecabillError
    from decabill.identity.service import create_admin
    from decabill.migrations import migrate
    from decabill.tenancy import bound_tenant, resolve_tenant

    settings = _load_settings()
    password = args.password or os.environ.get("DECABILL_ADMIN_PASSWORD") or getpass.getpass("Password: ")

    async def run() -> None:
        await _check_storage(settings)
        await migrate(settings.database_url)
        db.init_engine(settings.database_url, **settings.database_pool)
        try:
            with bound_tenant(resolve_tenant(args.tenant, settings.tenants)):
                user = await create_admin(args.email, password)
            print(f"created admin {user.email} ({user.id}) in tenant {user.tenant_id}")
        finally:
            await db.dispose_engine()

    try:
        asyncio.run(run())
    except DecabillError as exc:
        print(f"decabill: {exc.message}", file=sys.stderr)
        raise SystemExit(1) from None


async def _with_database(settings: Settings, work):
    """Run `work()` with the engine of the configuration (the schema must be current: `decabill migrate`)."""
    from decabill import db

    await _check_storage(settings)
    db.init_engine(settings.database_url, **settings.database_pool)
    try:
        result = await work()
        await _drain_in_process_jobs()
        return result
    finally:
        await db.dispose_engine()


async def _drain_in_process_jobs(timeout: float = 120) -> None:
    """Without Redis the jobs a command's work sent (a billed invoice's PDF and mail) run in this process: let
    them finish before it exits, so none is left half done (bounded; what is left the periodic jobs redo)."""
    from decabill.jobs.queue import get_broker, is_in_process

    broker = get_broker()
    if not is_in_process(broker):
        return
    await _wait_for_in_process_jobs(broker, timeout)


async def _wait_for_in_process_jobs(broker, timeout: float | None = None) -> None:
    """Until the in-process broker's jobs (and those they send) are finished, or `timeout` seconds passed.
    Polled, not `broker.wait_all()` in a loop: a finished task stays in the broker's set until its done-callback
    runs, and awaiting finished tasks never yields to the event loop — such a loop spun forever."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while any(not task.done() for task in list(getattr(broker, "_running_tasks", ()))):
        if deadline is not None and loop.time() >= deadline:
            return
        await asyncio.sleep(0.1)


def cmd_jobs(args: argparse.Namespace) -> None:
    from decabill.jobs import overview

    settings = _load_settings()
    if args.jobs_command == "retry-failed":
        report, all_succeeded = asyncio.run(_with_database(settings, lambda: overview.retry_failed(args.limit)))
        print(report)
        raise SystemExit(0 if all_succeeded else 1)
    print(asyncio.run(_with_database(settings, lambda: overview.overview(settings))))


def cmd_bill_day(args: argparse.Namespace) -> None:
    """One billing day by hand, with a progress bar per tenant and a summary (decabill/invoicing/billing_day.py)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from decabill.invoicing.service import DocumentsNotRendered, billing_day
    from decabill.jobs.queue import get_broker, is_in_process

    settings = _load_settings()
    if args.tenant and args.tenant not in settings.tenants:
        print(f"decabill: unknown tenant {args.tenant!r} (TENANTS: {', '.join(settings.tenants)})", file=sys.stderr)
        raise SystemExit(2)
    if not args.dry_run and (missing := settings.billing_issuer_missing):
        print(f"decabill: no invoice can be issued until {', '.join(missing)} are set", file=sys.stderr)
        raise SystemExit(2)
    console = Console(stderr=True)
    concurrency = args.concurrency or settings.queue_worker_concurrency

    broken: list[str] = []  # tenants whose PDFs could not be rendered

    async def run_day() -> list:
        broker = get_broker()
        await broker.startup()
        summaries = []
        try:
            for tenant in ([args.tenant] if args.tenant else settings.tenants):
                with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("{task.fields[rate]:.1f} invoices/s"), TimeElapsedColumn(),
                              TextColumn("ETA"), TimeRemainingColumn(), console=console,
                              disable=args.dry_run) as progress:
                    bar = progress.add_task(f"tenant {tenant}", total=None, rate=0.0)

                    def show(summary, bar=bar, progress=progress) -> None:
                        progress.update(bar, total=summary.due, completed=summary.done,
                                        rate=summary.invoices / summary.seconds if summary.seconds else 0.0)

                    summary = await billing_day.run(tenant, concurrency=concurrency, on_progress=show,
                                                    dry_run=args.dry_run)
                    progress.update(bar, total=summary.due, completed=summary.done)
                summaries.append(summary)
            if not args.dry_run and is_in_process(broker):
                console.print("rendering the PDFs and sending the mails ...")
                await _wait_for_in_process_jobs(broker)
                for summary in summaries:  # what no job renders any more: another run's, a killed run's
                    try:
                        await billing_day.finish_documents(summary.tenant)
                    except DocumentsNotRendered as exc:
                        console.print(f"tenant {summary.tenant}: {exc}")
                        broken.append(summary.tenant)
            for summary in summaries:
                summary.documents_pending = await billing_day.documents_pending(summary.tenant)
        finally:
            await broker.shutdown()
        return summaries

    summaries = asyncio.run(_with_database(settings, run_day))
    failed = 0
    for summary in summaries:
        if args.dry_run:
            print(f"tenant {summary.tenant}: {summary.due} customers due (dry run: nothing billed)")
            continue
        outcomes = summary.outcomes
        failed += outcomes["failed"]
        rate = summary.invoices / summary.seconds if summary.seconds else 0.0
        print(f"tenant {summary.tenant}: {summary.due} customers due, {outcomes['billed']} invoiced "
              f"({summary.invoices} invoices), {outcomes['nothing']} with nothing to bill, {outcomes['busy']} billed "
              f"by another run at the same moment, {outcomes['failed']} failed; {summary.seconds:.1f} s, "
              f"{rate:.1f} invoices/s; PDFs and mails still to come: {summary.documents_pending}")
    raise SystemExit(1 if failed or broken else 0)


def cmd_doctor(_args: argparse.Namespace) -> None:
    from decabill.operations.doctor import main as doctor

    raise SystemExit(doctor())


def cmd_contract_test(args: argparse.Namespace) -> None:
    from decabill.contract_test import main as contract_test

    raise SystemExit(contract_test(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="decabill", description="Decabill billing manager")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate the database, then serve HTTP (PORT) and Socket.IO (WEBSOCKET_PORT)")
    serve.add_argument("--no-socket", action="store_true", help="do not start the Socket.IO listener")
    serve.add_argument("--http-fd", type=int, help=argparse.SUPPRESS)  # internal: an HTTP worker's inherited socket
    serve.set_defaults(func=cmd_serve)

    socket = sub.add_parser("socket", help="serve only the Socket.IO dashboard gateway (WEBSOCKET_PORT)")
    socket.set_defaults(func=cmd_socket)

    worker = sub.add_parser("worker", help="consume background jobs from Redis (the same as QUEUE_ROLE=worker decabill serve)")
    worker.set_defaults(func=cmd_worker)

    migrate = sub.add_parser("migrate", help="upgrade the database schema to the newest revision")
    migrate.set_defaults(func=cmd_migrate)

    admin = sub.add_parser("create-admin", help="create a confirmed admin user in a tenant")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", help="password (else DECABILL_ADMIN_PASSWORD or a prompt)")
    admin.add_argument("--tenant", default="default", help="tenant id (default: default)")
    admin.set_defaults(func=cmd_create_admin)

    jobs = sub.add_parser("jobs", help="show what is queued, running and failed, and when each periodic job last ran",
                          description="Without a subcommand: the queue, the running and failed units and the last "
                                      "run of every periodic job.")
    jobs.set_defaults(func=cmd_jobs, jobs_command=None)
    jobs_sub = jobs.add_subparsers(dest="jobs_command")
    retry = jobs_sub.add_parser(
        "retry-failed", help="send every failed unit again",
        description="Send every failed unit again. With Redis the workers run them; without, they run in this "
                    "process. Exit code 1 when one that ran here failed again.")
    retry.add_argument("--limit", type=int, default=None, help="at most this many, oldest first")

    bill_day = sub.add_parser(
        "bill-day", help="run today's billing day now: invoice every customer who is due, with a progress bar",
        description="Invoice every customer whose billing day is today (or was missed) through the billing day's "
                    "own unit, QUEUE_WORKER_CONCURRENCY (or --concurrency) at a time; safe next to the scheduled "
                    "run. The PDFs and mails follow as jobs (the workers on Redis; without Redis this command "
                    "waits for them). Exit code 1 when a customer failed.")
    bill_day.add_argument("--tenant", help="only this tenant (default: every tenant of TENANTS)")
    bill_day.add_argument("--dry-run", action="store_true", help="only count the customers who are due")
    bill_day.add_argument("--concurrency", type=int, default=None, help="customers billed at a time")
    bill_day.set_defaults(func=cmd_bill_day)

    doctor = sub.add_parser(
        "doctor", help="check the configuration and every dependency it names (database, Redis, SMTP, Stripe, ...)",
        description="One line per check: OK, WARN (works, but look at it), FAIL (with what to do) or SKIP (not "
                    "configured). Exit code 0 when nothing failed, 1 otherwise, 2 for an invalid configuration.")
    doctor.set_defaults(func=cmd_doctor)

    from decabill.contract_test import add_arguments

    contract = sub.add_parser(
        "contract-test", help="run schemathesis from the bundled spec against a running deployment and report",
        description="Fuzz every operation of the bundled spec/openapi.yaml against a running deployment with "
                    "schemathesis. Exit code 0: every check passed; 1: contract violations; 2: usage or configuration error.",
    )
    add_arguments(contract)
    contract.set_defaults(func=cmd_contract_test)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from decabill.logging import configure_logging

    with contextlib.suppress(ConfigurationError):
        configure_logging(get_settings().log_level)
    args.func(args)


if __name__ == "__main__":
    main()
