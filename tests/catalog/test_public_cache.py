"""The public catalogue's cached answers: ETag and 304, a catalogue change seen at once in this process and
within about a second in another one, and reads that survive a dropped database connection."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import time

import httpx
import pytest
from sqlalchemy import text

from decabill import db
from tests.catalog.conftest import create_plan, create_type
from tests.processes import decabill_serve

OFFERINGS = "/public/service-plan-offerings"


async def test_answers_carry_an_etag_and_a_current_copy_is_304(api, admin):
    service_type = await create_type(api, admin)
    plan = await create_plan(api, admin, service_type["id"], name="Small", basePrice="4")

    first = await api.get(OFFERINGS)
    assert first.status_code == 200 and [o["name"] for o in first.json()] == ["Small"]
    etag = first.headers["etag"]
    assert etag.startswith('"') and first.headers["cache-control"] == "public, max-age=0"

    unchanged = await api.get(OFFERINGS, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag
    assert (await api.get(OFFERINGS, headers={"If-None-Match": '"something-else"'})).status_code == 200

    cheapest = await api.get(f"{OFFERINGS}/cheapest")
    assert cheapest.status_code == 200 and cheapest.json()["id"] == plan["id"]
    assert (await api.get(f"{OFFERINGS}/cheapest", headers={"If-None-Match": cheapest.headers["etag"]})).status_code == 304

    # a catalogue write is seen by the very next read of this process, with a new ETag
    await api.post(f"/service-plans/{plan['id']}", token=admin, json={"name": "Renamed"})
    changed = await api.get(OFFERINGS, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and [o["name"] for o in changed.json()] == ["Renamed"]
    assert changed.headers["etag"] != etag

    await create_plan(api, admin, service_type["id"], name="Cheaper", basePrice="1")
    assert (await api.get(f"{OFFERINGS}/cheapest")).json()["name"] == "Cheaper"
    await api.delete(f"/service-plans/{plan['id']}", token=admin)
    assert [o["name"] for o in (await api.get(OFFERINGS)).json()] == ["Cheaper"]


async def test_each_tenant_and_query_has_its_own_answer(api, admin):
    service_type = await create_type(api, admin)
    for n in range(3):
        await create_plan(api, admin, service_type["id"], name=f"P{n}")
    assert len((await api.get(OFFERINGS)).json()) == 3
    assert len((await api.get(OFFERINGS, params={"limit": 1})).json()) == 1
    assert (await api.get(OFFERINGS, tenant="acme")).json() == []


def test_another_process_sees_a_catalogue_change_within_seconds(tmp_path):
    """Two real processes on one database: the one that did not write notices the new catalogue version."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
           "AUTHENTICATION_METHOD": "api-key", "STATIC_API_KEY": "k" * 32, "RATE_LIMIT_ENABLED": "false",
           "ENCRYPTION_KEY": base64.b64encode(b"c" * 32).decode(), "NODE_ENV": "test", "SMTP_HOST": "",
           "LOG_LEVEL": "warning"}
    key = {"Authorization": f"Bearer {'k' * 32}"}
    with decabill_serve(env, tmp_path, tmp_path / "a.log") as writer, decabill_serve(env, tmp_path, tmp_path / "b.log") as reader:
        created = httpx.post(f"{writer}/service-types", headers=key,
                             json={"key": "vps", "name": "VPS", "provider": "manual"}, timeout=30)
        assert created.status_code == 201, created.text
        plan = {"serviceTypeId": created.json()["id"], "name": "Before", "billingIntervalType": "month",
                "billingIntervalValue": 1, "basePrice": "3"}
        assert httpx.post(f"{writer}/service-plans", headers=key, json=plan, timeout=30).status_code == 201
        assert _names_within(reader, {"Before"}, seconds=10)
        plan_id = httpx.get(f"{reader}{OFFERINGS}", timeout=30).json()[0]["id"]
        assert httpx.post(f"{writer}/service-plans/{plan_id}", headers=key, json={"name": "After"}, timeout=30).status_code == 200
        assert _names_within(reader, {"After"}, seconds=10), "the reader kept serving the old catalogue"


def _names_within(base: str, names: set[str], *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if {o["name"] for o in httpx.get(f"{base}{OFFERINGS}", timeout=30).json()} == names:
            return True
        time.sleep(0.1)
    return False


async def test_a_read_survives_connections_the_database_dropped(api, admin, database):
    if db.dialect_name() != "postgresql":
        pytest.skip("PostgreSQL ends connections; SQLite has none to lose")
    await create_type(api, admin)
    assert (await api.get("/service-types", token=admin)).status_code == 200  # the pool now holds a connection
    async with db.get_engine().connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        await conn.commit()
    response = await api.get("/service-types", token=admin)
    assert response.status_code == 200, response.text
    assert len(response.json()) == 1


async def test_a_public_read_on_sqlite_does_not_wait_for_a_writer(api, admin, database):
    if db.dialect_name() != "sqlite":
        pytest.skip("SQLite's single writer lock")
    service_type = await create_type(api, admin)
    await create_plan(api, admin, service_type["id"], name="Listed")
    writer = sqlite3.connect(database.split("///", 1)[1], timeout=1, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        response = await asyncio.wait_for(api.get(OFFERINGS, params={"limit": 7}), timeout=10)
        assert [o["name"] for o in response.json()] == ["Listed"]
    finally:
        writer.execute("ROLLBACK")
        writer.close()


async def test_a_request_never_waits_for_the_version_check(api, admin, monkeypatch):
    """The check of the catalogue version runs in the background: while it hangs, requests are answered from the
    version known (before, each request arriving during the check queued behind it — periodic stalls)."""
    from decabill.catalog import public_cache as cache_module

    service_type = await create_type(api, admin)
    await create_plan(api, admin, service_type["id"], name="Small", basePrice="4")
    assert [o["name"] for o in (await api.get(OFFERINGS)).json()] == ["Small"]  # the version is known now

    started, release = asyncio.Event(), asyncio.Event()
    read_version = cache_module.current_number

    async def hanging_version_read(session, name):
        started.set()
        await release.wait()
        return await read_version(session, name)

    monkeypatch.setattr(cache_module, "current_number", hanging_version_read)
    monkeypatch.setattr(cache_module, "VERSION_CHECK_SECONDS", 0.0)  # every request finds the version due a check
    try:
        for _ in range(3):
            answered = await asyncio.wait_for(api.get(OFFERINGS), timeout=5)
            assert [o["name"] for o in answered.json()] == ["Small"]
        assert started.is_set()
        assert len(cache_module.public_cache._refreshing) == 1  # one check, however many requests
    finally:
        release.set()
        for _ in range(100):
            if not cache_module.public_cache._refreshing:
                break
            await asyncio.sleep(0.05)
    assert not cache_module.public_cache._refreshing
