"""A load client that records every request: when it started and how long it took (the c=50 tail, issue #20).

    .venv/bin/python -m bench.record --database decabill_bench_<you> --endpoint "invoices summary" -c 50
    .venv/bin/python -m bench.record --base http://127.0.0.1:8080 --path /api/public/service-plan-offerings -c 50

wrk reports percentiles only; this client keeps (start, latency, connection) of each request, so a tail can be
told apart: a few requests waiting much longer than the rest (an unfair queue: some wait several turns), or every
connection slow in the same window (a stall of the whole process: a full collection, a blocking call). It drives
`--connections` HTTP/1.1 keep-alive connections with raw requests on uvloop (a request prepared once, responses
read by Content-Length: the client itself costs little CPU), for `--seconds` after a short warm-up.

Without `--base` it starts Decabill (`decabill serve`, one process, as bench/api.py does) on a database that
bench/api.py seeded (`--database`), logs in as the bench customer or admin (`--endpoint` names bench/api.py's
endpoints) and stops it at the end. It prints req/s, p50/p90/p99/max, the slowest requests with their start, and
the windows of `--window` ms in which most of the slow requests started; `--csv` writes every request.
Run it under `flock -x /work/wt/cpu.lock`; `--pin CPU` runs the client on that core only (a diagnostic: the
server keeps the other core instead of sharing both with the load generator).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from bench.api import endpoints

# bench/api.py's endpoints: name -> (path, who); "{subscription}" stands for the bench customer's first subscription
ENDPOINTS = {name: (path, who) for name, path, who in endpoints("{subscription}", "customer", "admin")}


async def _connection(
    host: str,
    port: int,
    request: bytes,
    deadline: float,
    started_at: float,
    records: list[tuple[float, float, int, int]],
    number: int,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            start = time.perf_counter()
            if start >= deadline:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            end = time.perf_counter()
            records.append((start - started_at, end - start, number, status))
    finally:
        writer.close()


async def drive(
    base: str, path: str, headers: dict[str, str], *, connections: int, seconds: float, warmup: float = 1.0
) -> list[tuple[float, float, int, int]]:
    """(start s since the run began, latency s, connection number, status) of every request of the run."""
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        + "\r\n"
    ).encode()
    if warmup:
        await asyncio.gather(
            *(_connection(host, port, request, time.perf_counter() + warmup, 0.0, [], n) for n in range(connections))
        )
    records: list[tuple[float, float, int, int]] = []
    started_at = time.perf_counter()
    # CLOCK_MONOTONIC, the same in every process of the machine: lines up with timestamps a server logs
    print(f"  run starts at time.perf_counter() = {started_at:.6f}")
    await asyncio.gather(
        *(_connection(host, port, request, started_at + seconds, started_at, records, n) for n in range(connections))
    )
    return records


def report(
    records: list[tuple[float, float, int, int]], seconds: float, *, window_ms: float = 100, slowest: int = 15
) -> None:
    latencies = sorted(r[1] for r in records)
    count = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(count - 1, int(count * p))] * 1000

    errors = sum(1 for r in records if r[3] >= 400)
    print(
        f"{count} requests in {seconds:.0f} s: {count / seconds:,.0f} req/s, errors {errors}; latency ms p50 "
        f"{pct(0.5):.1f}, p90 {pct(0.9):.1f}, p99 {pct(0.99):.1f}, p99.9 {pct(0.999):.1f}, max {latencies[-1] * 1000:.1f}"
    )
    threshold = pct(0.99) / 1000
    slow = [r for r in records if r[1] >= threshold]
    median = pct(0.5) / 1000
    print(f"  slowest {slowest} (start s, latency ms, connection; x median):")
    for start, latency, number, _status in sorted(records, key=lambda r: -r[1])[:slowest]:
        print(f"    {start:8.3f} {latency * 1000:8.1f} conn {number:>3}  x{latency / median:.1f}")
    windows = Counter(int(r[0] * 1000 // window_ms) for r in slow)
    connections = {}
    for r in slow:
        connections.setdefault(int(r[0] * 1000 // window_ms), set()).add(r[2])
    spread = len(windows)
    print(
        f"  the {len(slow)} requests at or above p99 started in {spread} windows of {window_ms:.0f} ms "
        f"(of {int(seconds * 1000 // window_ms)}); busiest:"
    )
    for window, n in windows.most_common(8):
        print(
            f"    {window * window_ms / 1000:8.2f} s: {n:>4} slow requests on {len(connections[window]):>3} connections"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="a running server (default: start Decabill on --database)")
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "decabill_bench_api"))
    parser.add_argument("--endpoint", default="invoices summary", choices=sorted(ENDPOINTS))
    parser.add_argument("--path", help="a path of --base instead of --endpoint (no authentication)")
    parser.add_argument("-c", "--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--window", type=float, default=100, help="ms per window of the slow-request histogram")
    parser.add_argument("--csv", help="write start_s,latency_ms,connection,status of every request here")
    parser.add_argument("--pin", type=int, help="run this client on that CPU only (diagnostic)")
    parser.add_argument("--runs", type=int, default=1, help="runs in a row against the same server")
    args = parser.parse_args()
    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass

    from bench import api

    server = None
    base, path, headers = args.base, args.path, {}
    try:
        if base is None:
            api.DATABASE = args.database
            url = f"{api.PG_URL.replace('postgresql://', 'postgresql+asyncpg://')}/{args.database}"
            server = api.start_decabill(url, Path(tempfile.mkdtemp(prefix="bench-record-")), 1)
            base = server.base
            print(f"decabill serve pid {server.process.pid} at {base}")
        if path is None:
            path, who = ENDPOINTS[args.endpoint]
            if who is not None:
                import httpx

                token = api.login(base, api.CUSTOMER_EMAIL if who == "customer" else api.ADMIN_EMAIL)
                headers["Authorization"] = f"Bearer {token}"
                if "{subscription}" in path:
                    first = httpx.get(f"{base}/api/subscriptions", headers=headers, timeout=30).json()[0]["id"]
                    path = path.format(subscription=first)
        for run in range(args.runs):
            load = os.getloadavg()
            print(
                f"{time.strftime('%H:%M:%S', time.gmtime())} UTC, run {run + 1}, {path}, c={args.connections}, "
                f"load average {load[0]:.2f}"
            )
            records = asyncio.run(drive(base, path, headers, connections=args.connections, seconds=args.seconds))
            report(records, args.seconds, window_ms=args.window)
            if args.csv:
                with open(args.csv if args.runs == 1 else f"{args.csv}.{run + 1}", "w") as out:
                    out.write("start_s,latency_ms,connection,status\n")
                    for start, latency, number, status in sorted(records):
                        out.write(f"{start:.6f},{latency * 1000:.3f},{number},{status}\n")
    finally:
        if server is not None:
            with contextlib.suppress(Exception):
                server.stop()


if __name__ == "__main__":
    main()
