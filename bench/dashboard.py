"""Benchmark of the dashboard gateway (issue #25): N sockets from M client processes against P gateway
processes (`decabill socket`, with Redis when P > 1), customers with one server each at the Hetzner fake.

    .venv/bin/python -m bench.dashboard --sockets 500 --servers 50 --gateways 1 --clients 2 --duration 45

Prints, for the measured window (after every socket got its first snapshot): provider calls per tick (GETs of
a server at the fake, per interval), delivery (sockets that got every tick), lateness p50/p99 (how much later
than one interval after the previous one a snapshot arrived), ticks missed, watch-list loads per tick, CPU
(% of one core) and RSS per gateway process, the machine's load average. Everything runs on 127.0.0.1 (the
tests' loopback guard is active here too). STATUS_POLL_INTERVAL is the interval (10 s, the minimum).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NS = "/billing"


# --------------------------------------------------------------------------------------------- client role


async def run_clients(urls: list[str], tokens: list[str], interval_ms: int, duration: float, out: str) -> None:
    import socketio

    received: list[list[float]] = [[] for _ in tokens]
    errors: list[str] = []
    clients = []

    async def one(index: int, token: str) -> None:
        client = socketio.AsyncClient(reconnection=False)

        async def update(payload) -> None:
            received[index].append(time.time())

        async def error(payload) -> None:
            errors.append(str(payload))

        client.on("dashboardStatusUpdate", update, namespace=NS)
        client.on("error", error, namespace=NS)
        await client.connect(urls[index % len(urls)], namespaces=[NS], transports=["websocket"],
                             auth={"Authorization": f"Bearer {token}"}, wait_timeout=60)
        clients.append(client)
        await client.call("subscribeDashboardStatus", {"pollIntervalMs": interval_ms}, namespace=NS, timeout=120)

    refused = 0
    for start in range(0, len(tokens), 100):
        results = await asyncio.gather(*(one(i, tokens[i]) for i in range(start, min(start + 100, len(tokens)))),
                                       return_exceptions=True)
        refused += sum(1 for r in results if isinstance(r, BaseException))
    ready = time.time()
    Path(out).with_suffix(".ready").write_text("{}")  # the coordinator starts measuring when all clients are ready
    await asyncio.sleep(duration)
    await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)
    Path(out).write_text(json.dumps({"ready": ready, "received": received, "errors": errors, "refused": refused}))


# --------------------------------------------------------------------------------------------- measurement


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def seed(api, customers: int, servers_per_customer: int) -> list[str]:
    from tests.subscriptions.conftest import complete_profile, hetzner_plan, order

    admin = await api.admin_token()
    plan = await hetzner_plan(api, admin)
    tokens = []
    for n in range(customers):
        token = await api.user_token(admin, f"bench{n}@example.com")
        await complete_profile(api, token, email=f"bench{n}@example.com")
        for _ in range(servers_per_customer):
            await order(api, token, plan["id"])
        tokens.append(token)
    return tokens


async def main_async(args: argparse.Namespace) -> None:
    import logging

    import httpx
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    import tests.conftest as conftest
    from decabill import db
    from decabill.config import get_settings, reset_settings_cache
    from decabill.migrations import migrate
    from tests.fakes.server import FakeCloud
    from tests.fakes.smtp import SmtpSink
    from tests.processes import free_port, port_is_open

    workdir = Path(tempfile.mkdtemp(prefix="decabill-bench-"))
    cloud = FakeCloud().start()
    sink = SmtpSink().start()
    pg_name = None
    if args.backend == "postgresql":
        pg_name, url = await conftest._create_pg_database()
    else:
        url = f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}"
    await migrate(url)
    prefix = f"decabill-bench-{os.getpid()}"
    env = {**os.environ, **conftest.BASE_ENV, "DECABILL_VALIDATE_RESPONSES": "false", "DATABASE_URL": url,
           "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(sink.port), "HETZNER_API_TOKEN": cloud.hetzner_token,
           "HETZNER_API_URL": cloud.hetzner_url, "PROVIDER_MAX_RETRIES": "0", "DNS_BASE_DOMAIN": "decabill.test",
           "PROVISIONING_IP_POLL_INTERVAL_MS": "10", "PROVISIONING_IP_POLL_ATTEMPTS": "5",
           "STATUS_POLL_INTERVAL": str(args.interval), "LOG_LEVEL": "warning", "REDIS_KEY_PREFIX": prefix}
    for key in conftest.CLEARED_ENV:
        if key != "DATABASE_URL":
            env.pop(key, None)
    if args.gateways > 1 or args.redis:
        env["REDIS_URL"] = args.redis_url
    os.environ.update(env)
    reset_settings_cache()
    db.init_engine(url)
    from decabill.web.app import create_app

    conftest.SMTP_SINK = sink
    gateways: list[subprocess.Popen] = []
    clients: list[subprocess.Popen] = []
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(get_settings())),
                                     base_url="http://testserver", timeout=60) as http:
            started = time.monotonic()
            tokens = await seed(conftest.Api(http), args.servers, 1)
            print(f"seeded {len(tokens)} customers with one server each in {time.monotonic() - started:.0f} s",
                  flush=True)
        await db.dispose_engine()
        ports = [free_port() for _ in range(args.gateways)]
        for port in ports:
            gateways.append(subprocess.Popen(
                [sys.executable, "-m", "decabill.cli", "socket"], cwd=REPO,
                env={**env, "HOST": "127.0.0.1", "WEBSOCKET_PORT": str(port)},
                stdout=(workdir / f"gateway-{port}.log").open("wb"), stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while not all(port_is_open(p) for p in ports):
            assert time.monotonic() < deadline and all(g.poll() is None for g in gateways), "gateways did not start"
            await asyncio.sleep(0.2)
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        socket_tokens = [tokens[i % len(tokens)] for i in range(args.sockets)]  # sockets per customer: N / servers
        outs = []
        for c in range(args.clients):
            mine = socket_tokens[c::args.clients]
            spec = workdir / f"client-{c}.json"
            spec.write_text(json.dumps({"urls": urls, "tokens": mine}))
            outs.append(workdir / f"client-{c}.out.json")
            clients.append(subprocess.Popen(
                [sys.executable, "-m", "bench.dashboard", "--client", str(spec), "--client-out", str(outs[-1]),
                 "--interval", str(args.interval), "--duration", str(args.duration + 30)], cwd=REPO, env=env))
        # The measured window starts once every client process has subscribed all its sockets.
        while True:
            ready = [json.loads(o.with_suffix(".ready").read_text()) for o in outs if o.with_suffix(".ready").exists()]
            if len(ready) == len(outs):
                break
            assert all(p.poll() is None for p in clients), "a client process died"
            await asyncio.sleep(0.2)
        window_start = time.time()

        def reads() -> int:
            with cloud.hetzner.lock:
                return sum(1 for r in cloud.hetzner.requests
                           if r["method"] == "GET" and r["path"].startswith("/v1/servers/") and r["path"].count("/") == 3)

        reads_before = reads()
        cpu_before = [proc_cpu_seconds(g.pid) for g in gateways]
        spy = None
        if args.profile:  # py-spy (PyPI) samples the first gateway during the measured window
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(gateways[0].pid),
                                    "-d", str(int(args.duration)), "-r", "50", "-f", "raw", "-o", args.profile],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.sleep(args.duration)
        if spy is not None:
            spy.wait(timeout=60)
        window = time.time() - window_start
        reads_in_window = reads() - reads_before
        cpu = [(proc_cpu_seconds(g.pid) - b) / window * 100 for g, b in zip(gateways, cpu_before, strict=True)]
        rss = [proc_rss_mb(g.pid) for g in gateways]
        load = os.getloadavg()
        for p in clients:
            p.wait(timeout=args.duration + 120)
        results = [json.loads(o.read_text()) for o in outs]
    finally:
        for p in clients + gateways:
            if p.poll() is None:
                p.terminate()
        for p in clients + gateways:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        cloud.stop()
        sink.stop()
        if pg_name is not None:
            await conftest._drop_pg_database(pg_name)

    interval = args.interval / 1000
    ticks = window / interval
    # Per socket, the snapshots of the poller (the first one is the subscribe's) that arrived in the window: a
    # gap of k intervals means k - 1 ticks missed; lateness is how much longer than its intervals a gap was.
    lateness, missed, complete, errors, refused = [], 0, 0, [], 0
    for result in results:
        errors += result["errors"]
        refused += result["refused"]
        for times in result["received"]:
            polled = [t for t in times[1:] if window_start <= t <= window_start + window]
            lost = 0
            for a, b in zip(polled, polled[1:], strict=False):
                steps = max(1, round((b - a) / interval))
                lost += steps - 1
                lateness.append(max(0.0, b - a - steps * interval))
            lost += 0 if polled else 1
            missed += lost
            complete += lost == 0 and len(polled) >= int(ticks) - 1
    print(json.dumps({
        "sockets": args.sockets, "servers": args.servers, "gateways": args.gateways, "client_processes": args.clients,
        "backend": args.backend, "interval_s": interval, "window_s": round(window, 1),
        "window_utc": [time.strftime("%H:%M:%S", time.gmtime(t)) for t in (window_start, window_start + window)],
        "provider_calls_per_tick": round(reads_in_window / ticks, 1),
        "sockets_with_every_tick": f"{complete} of {args.sockets}", "ticks_missed": missed,
        "lateness_p50_ms": round(percentile(lateness, 50) * 1000), "lateness_p99_ms": round(percentile(lateness, 99) * 1000),
        "error_events": len(errors), "error_messages": sorted(set(errors))[:5], "connects_refused": refused,
        "gateway_cpu_percent": [round(c) for c in cpu], "gateway_rss_mb": [round(r) for r in rss],
        "load_average": [round(v, 2) for v in load], "loopback_violations": len(conftest.loopback_violations()),
    }, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--servers", type=int, default=50, help="customers, one server each")
    parser.add_argument("--gateways", type=int, default=1, help="gateway processes (Redis when > 1)")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--duration", type=float, default=45.0, help="measured seconds")
    parser.add_argument("--interval", type=int, default=10000, help="pollIntervalMs")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--redis", action="store_true", help="use Redis with one gateway too")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--profile", help="py-spy raw (collapsed stacks) output of the first gateway")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--client-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        spec = json.loads(Path(args.client).read_text())
        asyncio.run(run_clients(spec["urls"], spec["tokens"], args.interval, args.duration, args.client_out))
        return
    asyncio.run(main_async(args))

if __name__ == "__main__":
    main()
