"""Bounded requests against a real `decabill serve`: oversize bodies refused with 413 while they are read
(memory stays flat under many at once), deep JSON and control characters answered 400, the usage payload's
own size limit."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import httpx

from tests.helpers import assert_error
from tests.invoicing.conftest import customer_with_subscription
from tests.security.conftest import api_of
from tests.subscriptions.conftest import manual_plan

MIB = 1024 * 1024
OVERSIZE = 50 * MIB
ATTACKERS = 20


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))


async def _upload(port: int, chunked: bool) -> tuple[int, bytes]:
    """POST an unauthenticated 50 MB body the way an attacker would: keep sending until the server answers
    (or shuts the connection); returns the status and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {OVERSIZE}"
    writer.write(f"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 f"{framing}\r\n\r\n".encode())

    async def answer() -> tuple[int, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
        return status, await reader.readexactly(length)

    answered = asyncio.create_task(answer())
    piece = b"[" * MIB
    try:
        for _ in range(OVERSIZE // MIB):
            if answered.done():
                break
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await writer.drain()
    except (ConnectionError, OSError):
        pass  # closed after its 413: the rest of the upload is not wanted
    try:
        return await asyncio.wait_for(answered, 120)
    finally:
        writer.close()


def test_concurrent_oversize_bodies_are_refused_while_read_and_memory_stays_flat(serve, tmp_path):
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'limits.sqlite3'}"  # memory, not the backend, is measured
    with serve(database_url) as served:
        port = int(served.base.split(":")[2].split("/")[0])
        for _ in range(3):  # warm up: the routes, the validator, the database pool
            httpx.post(f"{served.base}/auth/login", json={"email": "a@example.com", "password": "x" * 10})
        baseline = _rss_kib(served.process.pid)
        peak = [baseline]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.02):
                peak[0] = max(peak[0], _rss_kib(served.process.pid))

        sampler = threading.Thread(target=sample)
        sampler.start()

        async def attack() -> list[tuple[int, bytes]]:
            return await asyncio.gather(*(_upload(port, chunked=n % 2 == 1) for n in range(ATTACKERS)))

        try:
            answers = asyncio.run(attack())
        finally:
            sampling.set()
            sampler.join()
        peak[0] = max(peak[0], _rss_kib(served.process.pid))
        assert [status for status, _ in answers] == [413] * ATTACKERS, answers[:2]
        assert all(b"Request body is larger than 1048576 bytes" in body for _, body in answers)
        growth_mib = (peak[0] - baseline) / 1024
        print(f"RSS growth under {ATTACKERS} concurrent {OVERSIZE // MIB} MiB uploads: {growth_mib:.1f} MiB")
        assert growth_mib < 50, f"RSS grew by {growth_mib:.0f} MiB"
        # The server still answers, and a body within the limit sent chunked is parsed as usual.
        chunked_login = httpx.post(f"{served.base}/auth/login", content=iter([b'{"email": "a@example.com", ',
                                                                              b'"password": "xxxxxxxxxx"}']),
                                   headers={"Content-Type": "application/json"})
        assert_error(chunked_login, 401, "Invalid email or password")


async def test_deep_json_control_characters_and_large_payloads_are_refused(serve, database):
    with serve(database, MAX_REQUEST_BODY_BYTES="200000", USAGE_PAYLOAD_MAX_BYTES="1000") as served:
        api = api_of(served)
        deep = "[" * 100_000 + "]" * 100_000
        response = await api.post("/auth/login", content=deep, headers={"Content-Type": "application/json"})
        assert_error(response, 400, "Request body is nested more than 32 levels deep")
        # Unauthenticated, /usage/record answers 401 before reading the body.
        response = await api.post("/usage/record", content=deep, headers={"Content-Type": "application/json"})
        assert_error(response, 401)
        nested = {"email": "a@example.com", "password": "x" * 10}
        for _ in range(40):
            nested = {"email": "a@example.com", "password": "x" * 10, "x": nested}
        assert_error(await api.post("/auth/login", json=nested), 400, "Request body is nested more than 32 levels deep")

        admin = await api.admin_token()
        for search in ("\x00x", "a\x1fb", "\x7f"):
            response = await api.get("/admin/billing/invoices", params={"search": search}, token=admin)
            assert_error(response, 400, "search must not contain control characters")
        assert (await api.get("/admin/billing/invoices", params={"search": "ok"}, token=admin)).status_code == 200
        # the tab is whitespace HTTP allows inside a header's value; a term may hold one too
        assert (await api.get("/admin/billing/invoices", params={"search": "a\tb"}, token=admin)).status_code == 200
        tabbed = await api.get("/public/service-plan-offerings", headers={"If-None-Match": 'qA\tl"x'})
        assert tabbed.status_code == 200, tabbed.text

        plan = await manual_plan(api, admin)
        customer, subscription = await customer_with_subscription(api, admin, plan["id"], "customer@example.com")
        record = {"subscriptionId": subscription["id"], "periodStart": "2026-01-01T00:00:00Z",
                  "periodEnd": "2026-01-31T00:00:00Z"}
        fits = await api.post("/usage/record", json={**record, "usagePayload": {"note": "x" * 900}}, token=customer)
        assert fits.status_code == 200, fits.text
        too_large = await api.post("/usage/record", json={**record, "usagePayload": {"note": "x" * 1000}},
                                   token=customer)
        assert_error(too_large, 400, "usagePayload must be at most 1000 bytes as JSON")
        over_body_limit = await api.post("/usage/record", json={**record, "usagePayload": {"note": "x" * 300_000}},
                                         token=customer)
        assert_error(over_body_limit, 413, "Request body is larger than 200000 bytes")
        deep_payload = await api.post("/usage/record", content=deep, token=customer,
                                      headers={"Content-Type": "application/json"})
        assert_error(deep_payload, 400, "Request body is nested more than 32 levels deep")
