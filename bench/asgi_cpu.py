"""CPU per request of the whole web application, in-process: every middleware, Connexion's routing, security,
validation and parameters, the handler, its read and the response, called as uvicorn calls it — without uvicorn's
HTTP parsing and socket writes, wrk, and the noise of a load run on two shared cores.

    .venv/bin/python -m bench.asgi_cpu --database decabill_bench_<you> [--calls 3000] [--log-level info] \
        [--pg-socket /var/run/postgresql]

On a database bench/api.py has seeded. The app is built and started as `decabill serve` builds it (logging at
`--log-level` into a file, the collector tuned after start-up), tokens come from its own login. Each endpoint of
bench/api.py is called `--calls` times by `--concurrency` callers at once (as wrk's connections; one caller
alone pays a sleep and wake-up per request) after 300 warm-up calls, three times; printed is the best of the
three as this process's CPU time per request (`time.process_time`: PostgreSQL's work is not in it, asyncpg's is)
and the wall time per request, then p50/p99 of every call's time over the three runs (at `--concurrency` 50: the
spread the app and the pool make without HTTP, wrk and their share of the cores). Use it to see a change in the
request path as µs; `bench/api.py` gives the figures under load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from urllib.parse import urlsplit



def _scope(method: str, target: str, headers: list[tuple[bytes, bytes]], state: dict) -> dict:
    parts = urlsplit(target)
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": parts.path, "raw_path": parts.path.encode(),
            "query_string": parts.query.encode(), "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080), "state": dict(state)}


class Client:
    """Requests straight into the ASGI app, as uvicorn hands them over."""

    def __init__(self, app, state: dict) -> None:
        self.app, self.state = app, state

    async def call(self, method: str, target: str, token: str | None = None, body: bytes = b"") -> tuple[int, bytes]:
        headers = [(b"host", b"127.0.0.1:8080"), (b"user-agent", b"bench")]
        if token:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        if body:
            headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        sent = False
        status, chunks = 0, []

        async def receive() -> dict:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()  # the client never disconnects
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(_scope(method, target, headers, self.state), receive, send)
        return status, b"".join(chunks)


async def main(database: str, calls: int, concurrency: int, log_level: str, only: set[str] | None,
               pg_socket: str | None) -> None:
    import orjson

    from bench.api import (ADMIN_EMAIL, CUSTOMER_EMAIL, ENCRYPTION_KEY, JWT_SECRET, PASSWORD, PG_URL, endpoints,
                           socket_dsn)
    from decabill import collector, db
    from decabill.config import get_settings
    from decabill.logging import configure_logging
    from decabill.web.app import create_app

    url = socket_dsn(pg_socket, database) if pg_socket else f"{PG_URL}/{database}"  # as bench/api.py's
    url = url.replace("postgresql://", "postgresql+asyncpg://")
    os.environ.update({"DATABASE_URL": url,
                       "AUTHENTICATION_METHOD": "users", "JWT_SECRET": JWT_SECRET, "RATE_LIMIT_ENABLED": "false",
                       "LOG_LEVEL": log_level, "NODE_ENV": "production", "SMTP_HOST": "",
                       "ENCRYPTION_KEY": ENCRYPTION_KEY})
    log = tempfile.NamedTemporaryFile(prefix="bench-asgi-", suffix=".log", delete=False)  # noqa: SIM115
    sys.stdout.flush()
    real_stdout = sys.stdout
    sys.stdout = open(log.name, "w", buffering=1)  # noqa: SIM115 - the log lines go where serve's would
    configure_logging(log_level)
    settings = get_settings()
    db.init_engine(settings.database_url, **settings.database_pool)
    app = create_app(settings)
    collector.tune_after_start_up()

    # the app's lifespan, as uvicorn runs it
    state: dict = {}
    started, stop = asyncio.Event(), asyncio.Event()
    messages = [{"type": "lifespan.startup"}]

    async def lifespan_receive() -> dict:
        if messages:
            return messages.pop()
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def lifespan_send(message: dict) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": state},
                                       lifespan_receive, lifespan_send))
    await started.wait()
    client = Client(app, state)

    async def login(email: str) -> str:
        status, body = await client.call("POST", "/api/auth/login",
                                         body=orjson.dumps({"email": email, "password": PASSWORD}))
        assert status == 200, body
        return orjson.loads(body)["access_token"]

    customer, admin = await login(CUSTOMER_EMAIL), await login(ADMIN_EMAIL)
    status, body = await client.call("GET", "/api/subscriptions", customer)
    subscription = orjson.loads(body)[0]["id"]
    targets = endpoints(subscription, customer, admin)
    print(f"{'endpoint':32} {'CPU µs/request':>15} {'wall µs/request':>16} {'p50 ms':>8} {'p99 ms':>8}",
          file=real_stdout)
    for name, target, token in targets:
        if only and name not in only:
            continue
        async def warm_up(count: int) -> None:
            for _ in range(count):
                status, body = await client.call("GET", target, token)
                assert status == 200, (name, status, body[:300])

        # as many at once as in the runs: the pool opens its connections here, not in the first run
        await asyncio.gather(*(warm_up(300 // concurrency + 1) for _ in range(concurrency)))
        best_cpu = best_wall = float("inf")
        latencies: list[float] = []

        async def caller(count: int) -> None:
            for _ in range(count):
                began = time.perf_counter()
                await client.call("GET", target, token)
                latencies.append(time.perf_counter() - began)

        for _ in range(3):
            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(caller(calls // concurrency) for _ in range(concurrency)))
            best_cpu = min(best_cpu, (time.process_time() - cpu) / calls)
            best_wall = min(best_wall, (time.perf_counter() - wall) / calls)
        latencies.sort()
        p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
        print(f"{name:32} {best_cpu * 1e6:>15.0f} {best_wall * 1e6:>16.0f} {p50 * 1e3:>8.1f} {p99 * 1e3:>8.1f}",
              file=real_stdout, flush=True)
    stop.set()
    await lifespan
    await db.dispose_engine()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE", "decabill_bench_api"))
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=10, help="requests in flight at once (as wrk -c)")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--only", help="comma-separated endpoint names")
    parser.add_argument("--pg-socket", metavar="FOLDER", help="connect through PostgreSQL's Unix socket in FOLDER")
    arguments = parser.parse_args()
    import uvloop

    uvloop.run(main(arguments.database, arguments.calls, arguments.concurrency, arguments.log_level,
                    set(arguments.only.split(",")) if arguments.only else None, arguments.pg_socket))
