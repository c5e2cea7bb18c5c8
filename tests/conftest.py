"""Test fixtures: real databases (a SQLite file and the machine's PostgreSQL), a real SMTP sink,
local fakes of the external APIs, and the app served through httpx's ASGI transport with response
validation on, so every response is checked against spec/openapi.yaml.

Every test that uses `api` runs once per backend in DECABILL_TEST_BACKENDS (default: both).
"""

from __future__ import annotations

import base64
import importlib.util
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from decabill import db
from decabill.config import get_settings, reset_settings_cache
from decabill.identity.throttle import forget_in_process_counters
from tests.fakes.smtp import SmtpSink

BACKENDS = [b.strip() for b in os.environ.get("DECABILL_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]
PG_ADMIN_URL = os.environ.get("DECABILL_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")

# --- the loopback guard (tests/guard/sitecustomize.py): this process and every Python child it starts -----------

GUARD_DIR = Path(__file__).with_name("guard")
_guard_spec = importlib.util.spec_from_file_location("decabill_loopback_guard", GUARD_DIR / "sitecustomize.py")
assert _guard_spec is not None and _guard_spec.loader is not None
loopback_guard = importlib.util.module_from_spec(_guard_spec)
_guard_spec.loader.exec_module(loopback_guard)
LOOPBACK_REPORT = Path(tempfile.mkstemp(prefix="decabill-loopback-", suffix=".log")[1])
os.environ[loopback_guard.REPORT_ENV] = str(LOOPBACK_REPORT)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(GUARD_DIR), os.environ.get("PYTHONPATH")) if p)
loopback_guard.install()


def loopback_violations() -> list[str]:
    return LOOPBACK_REPORT.read_text(encoding="utf-8").splitlines()


@pytest.fixture(autouse=True)
def _only_loopback() -> Iterator[None]:
    """Fail the test during which anything (this process or a child) tried to reach beyond 127.0.0.0/8."""
    before = len(loopback_violations())
    yield
    new = loopback_violations()[before:]
    if new:
        pytest.fail("connections outside loopback were attempted (refused):\n" + "\n".join(new), pytrace=False)


def pytest_sessionfinish(session, exitstatus) -> None:
    if loopback_violations() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# A port nothing listens on, held for the whole run: the SSH update job, whenever a scheduler starts it,
# dials 127.0.0.x on this port and is refused at once (never the machine's own sshd on 22).
_closed_port_holder = socket.socket()
_closed_port_holder.bind(("127.0.0.1", 0))
CLOSED_PORT = _closed_port_holder.getsockname()[1]

JWT_SECRET = "test-jwt-secret-0123456789abcdef"
STATIC_KEY = "test-static-api-key"
TEST_ENCRYPTION_KEY = base64.b64encode(b"k" * 32).decode()

BASE_ENV = {
    "AUTHENTICATION_METHOD": "users",
    "JWT_SECRET": JWT_SECRET,
    "PASSWORD_HASH_ROUNDS": "4",  # bcrypt cost 12 in production; 4 keeps the suite fast
    "TENANTS": "acme,globex",
    "DECABILL_VALIDATE_RESPONSES": "true",
    "RATE_LIMIT_ENABLED": "false",
    "ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
    "NODE_ENV": "test",
    "VIES_API_URL": "http://127.0.0.1:9/vies",  # nothing listens: tests that need VIES start the fake
    "SUBSCRIPTION_UPDATE_SSH_PORT": str(CLOSED_PORT),
}
# Variables a developer's shell might carry that would change what a test sees.
CLEARED_ENV = [
    "STATIC_API_KEY", "STATIC_API_KEY_TENANT_ID", "DISABLE_SIGNUP", "CORS_ORIGIN", "DATABASE_URL", "DB_HOST",
    "KEYCLOAK_SERVER_URL", "KEYCLOAK_AUTH_SERVER_URL", "KEYCLOAK_REALM", "KEYCLOAK_CLIENT_ID", "REDIS_URL",
    "REDIS_HOST", "RATE_LIMIT_LIMIT", "RATE_LIMIT_TTL", "RATE_LIMIT_AUTH_LIMIT",
]


# --- infrastructure -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def fake_cloud():
    from tests.fakes.server import FakeCloud

    cloud = FakeCloud().start()
    yield cloud
    cloud.stop()


async def _create_pg_database() -> tuple[str, str]:
    import asyncpg

    name = f"decabill_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin_dsn = PG_ADMIN_URL.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


async def _drop_pg_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session", params=BACKENDS)
async def database_url(request, tmp_path_factory) -> AsyncIterator[str]:
    """A migrated database per backend, shared by the tests of that backend (tables emptied per test)."""
    from decabill.migrations import migrate

    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'decabill.sqlite3'}"
        await migrate(url)
        yield url
    elif request.param == "postgresql":
        name, url = await _create_pg_database()
        try:
            await migrate(url)
            yield url
        finally:
            await db.dispose_engine()
            await _drop_pg_database(name)
    else:  # pragma: no cover
        raise ValueError(f"unknown backend {request.param}")


async def _empty_tables(conn, tables: list[str]) -> None:
    if conn.dialect.name == "postgresql":
        # The database belongs to this worker; a connection still open here is left over from an earlier
        # test (a background task, a killed server) and would deadlock the TRUNCATE or write into the next test.
        await conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            await conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
async def database(database_url) -> AsyncIterator[str]:
    """An engine on the backend's database with every table empty."""
    import models  # noqa: F401

    db.init_engine(database_url)
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    for attempt in range(5):
        try:
            async with db.get_engine().begin() as conn:
                await _empty_tables(conn, tables)
            break
        except DBAPIError as error:
            # leftover work of an earlier test may connect again between the terminate and the TRUNCATE and
            # deadlock with it: end it again and repeat
            if attempt == 4 or "deadlock" not in str(error):
                raise
    # Connections the pool took while the leftover work ran were ended above: start the test with none.
    await db.get_engine().dispose()
    yield database_url
    await db.dispose_engine()


@pytest.fixture
def env(monkeypatch, smtp_sink):
    """Set environment variables for the app under test; `env.update(KEY=value)` before `api`."""

    class Env:
        def update(self, **values: str | None) -> None:
            for key, value in values.items():
                if value is None:
                    monkeypatch.delenv(key, raising=False)
                else:
                    monkeypatch.setenv(key, str(value))
            reset_settings_cache()

    for key in CLEARED_ENV:
        monkeypatch.delenv(key, raising=False)
    forget_in_process_counters()  # sign-in failures of an earlier test must not throttle this one
    environment = Env()
    environment.update(**BASE_ENV, SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp_sink.port))
    yield environment
    reset_settings_cache()


# --- the API client -------------------------------------------------------------------------------


class Api:
    """httpx client bound to the app, with helpers for auth and tenant headers."""

    def __init__(self, client: httpx.AsyncClient):
        self.client = client

    async def request(self, method: str, path: str, *, token: str | None = None, tenant: str | None = None,
                      headers: dict | None = None, **kwargs) -> httpx.Response:
        merged = dict(headers or {})
        if token is not None:
            merged.setdefault("Authorization", token if " " in token else f"Bearer {token}")
        if tenant is not None:
            merged["X-Tenant"] = tenant
        return await self.client.request(method, f"/api{path}", headers=merged, **kwargs)

    async def get(self, path: str, **kwargs) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs) -> httpx.Response:
        return await self.request("PUT", path, **kwargs)

    async def delete(self, path: str, **kwargs) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)

    # -- identity shortcuts --
    async def register(self, email: str, password: str = "correct-horse-1", tenant: str | None = None) -> httpx.Response:
        return await self.post("/auth/register", json={"email": email, "password": password}, tenant=tenant)

    async def login(self, email: str, password: str = "correct-horse-1", tenant: str | None = None) -> str:
        response = await self.post("/auth/login", json={"email": email, "password": password}, tenant=tenant)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    async def admin_token(self, email: str = "admin@example.com", tenant: str | None = None) -> str:
        response = await self.register(email, tenant=tenant)
        assert response.status_code == 201, response.text
        assert response.json()["user"]["role"] == "admin"
        return await self.login(email, tenant=tenant)

    async def user_token(self, admin: str, email: str = "user@example.com", tenant: str | None = None) -> str:
        """A confirmed plain user, created by an admin (confirmation code read from the SMTP sink)."""
        response = await self.post("/users", token=admin, tenant=tenant,
                                   json={"email": email, "password": "correct-horse-1"})
        assert response.status_code == 201, response.text
        code = SMTP_SINK.code_for(email)
        confirmed = await self.post("/auth/confirm-email", json={"email": email, "code": code}, tenant=tenant)
        assert confirmed.status_code == 200, confirmed.text
        return await self.login(email, tenant=tenant)


_APPS: dict[tuple, object] = {}
SMTP_SINK: SmtpSink  # set by the `api` fixture so helpers can read codes


@pytest.fixture
async def make_api(env, database, smtp_sink):
    """Build the app from the current environment (call after `env.update(...)`)."""
    global SMTP_SINK
    SMTP_SINK = smtp_sink
    smtp_sink.clear()
    clients: list[httpx.AsyncClient] = []

    async def factory(fresh: bool = False) -> Api:
        from decabill.web.app import create_app

        reset_settings_cache()
        # Building the app parses the whole spec (~0.8 s); reuse it while the environment is the same.
        # (pytest's PYTEST_CURRENT_TEST names the running test: with it in the key, no app was ever reused)
        key = tuple(sorted((name, value) for name, value in os.environ.items() if name != "PYTEST_CURRENT_TEST"))
        app = None if fresh else _APPS.get(key)
        if app is None:
            app = _APPS[key] = create_app(get_settings())
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        clients.append(client)
        return Api(client)

    yield factory
    for client in clients:
        await client.aclose()


@pytest.fixture
async def api(make_api) -> Api:
    return await make_api()


