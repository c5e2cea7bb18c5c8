"""The installed `decabill` console command, run as real processes from a directory that is not the repo
(migrations and specs must ship inside the package): help, migrate, create-admin, serve, SIGTERM."""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from tests.processes import DECABILL, free_port, port_is_open

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "long-enough-1"


@pytest.fixture
def workdir(tmp_path) -> Path:
    """An empty working directory outside the repository."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    assert REPO not in path.parents
    return path


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}",
        "AUTHENTICATION_METHOD": "users",
        "JWT_SECRET": "cli-test-jwt-secret-0123456789",
        "ENCRYPTION_KEY": base64.b64encode(b"c" * 32).decode(),
        "PASSWORD_HASH_ROUNDS": "4",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": "1",
        "HOST": "127.0.0.1",
        "NODE_ENV": "development",
    }


def decabill(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([DECABILL, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def tables(sqlite_file: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(sqlite_file)) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_help_describes_every_command(workdir, cli_env):
    result = decabill("--help", env=cli_env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate", "create-admin"):
        assert command in result.stdout
    for command in ("serve", "migrate", "create-admin"):
        sub = decabill(command, "--help", env=cli_env, cwd=workdir)
        assert sub.returncode == 0, sub.stderr
        assert f"usage: decabill {command}" in sub.stdout
    assert "--no-socket" in decabill("serve", "--help", env=cli_env, cwd=workdir).stdout


def test_migrate_creates_the_schema_from_any_directory(workdir, cli_env, tmp_path):
    result = decabill("migrate", env=cli_env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert {"users", "alembic_version"} <= tables(tmp_path / "cli.sqlite3")
    assert list(workdir.iterdir()) == []  # nothing written to the working directory
    assert decabill("migrate", env=cli_env, cwd=workdir).returncode == 0  # idempotent


def test_the_embedded_database_lives_in_decabill_data_dir(workdir, cli_env, tmp_path):
    del cli_env["DATABASE_URL"]
    cli_env["DECABILL_DATA_DIR"] = str(tmp_path / "state")
    assert decabill("migrate", env=cli_env, cwd=workdir).returncode == 0
    assert "users" in tables(tmp_path / "state" / "decabill.sqlite3")
    assert not (workdir / "data").exists()


def test_without_any_database_setting_the_embedded_database_is_under_data_in_the_working_directory(workdir, cli_env):
    del cli_env["DATABASE_URL"]
    assert decabill("migrate", env=cli_env, cwd=workdir).returncode == 0
    assert "users" in tables(workdir / "data" / "decabill.sqlite3")


def test_create_admin_refuses_a_duplicate_and_a_short_password(workdir, cli_env):
    created = decabill("create-admin", "--email", "a@example.com", "--password", PASSWORD, env=cli_env, cwd=workdir)
    assert created.returncode == 0, created.stderr
    assert "a@example.com" in created.stdout
    again = decabill("create-admin", "--email", "A@example.com", "--password", PASSWORD, env=cli_env, cwd=workdir)
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
    short = decabill("create-admin", "--email", "b@example.com", "--password", "short", env=cli_env, cwd=workdir)
    assert short.returncode == 1 and "Traceback" not in short.stderr


def test_serve_answers_http_and_socketio_and_stops_cleanly_on_sigterm(workdir, cli_env, tmp_path):
    created = decabill("create-admin", "--email", "a@example.com", "--password", PASSWORD, env=cli_env, cwd=workdir)
    assert created.returncode == 0, created.stderr

    http_port, ws_port = free_port(), free_port()
    cli_env.update(PORT=str(http_port), WEBSOCKET_PORT=str(ws_port))
    log = (tmp_path / "serve.log").open("w+")
    server = subprocess.Popen([DECABILL, "serve"], env=cli_env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{http_port}/api"
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, f"decabill serve exited: {(tmp_path / 'serve.log').read_text()}"
            with contextlib.suppress(httpx.TransportError):
                health = httpx.get(f"{base}/health", timeout=2)
                break
            assert time.monotonic() < deadline, "decabill serve did not answer within 30 s"
            time.sleep(0.1)
        assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok"}

        login = httpx.post(f"{base}/auth/login", json={"email": "a@example.com", "password": PASSWORD})
        assert login.status_code == 200, login.text
        assert login.json()["user"]["role"] == "admin"
        users = httpx.get(f"{base}/users", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
        assert users.status_code == 200 and [u["email"] for u in users.json()] == ["a@example.com"]

        handshake = httpx.get(f"http://127.0.0.1:{ws_port}/socket.io/", params={"EIO": "4", "transport": "polling"})
        assert handshake.status_code == 200
        assert handshake.text.startswith("0") and '"sid"' in handshake.text  # Engine.IO OPEN packet

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0, (tmp_path / "serve.log").read_text()
        assert not port_is_open(http_port)
        assert not port_is_open(ws_port)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in output
    # No BILLING_ISSUER_* in this environment: the operator is told at start-up, naming what is missing.
    warning = next(json.loads(line) for line in output.splitlines() if "billing.issuer_incomplete" in line)
    assert warning["level"] == "warning"
    assert warning["missing"] == ["BILLING_ISSUER_NAME", "BILLING_ISSUER_VAT_ID", "BILLING_ISSUER_ADDRESS_LINE1",
                                  "BILLING_ISSUER_POSTAL_CODE", "BILLING_ISSUER_CITY"]


def test_serve_does_not_warn_when_the_billing_issuer_is_complete(workdir, cli_env, tmp_path):
    cli_env.update(BILLING_ISSUER_NAME="Decabill GmbH", BILLING_ISSUER_VAT_ID="DE123456789",
                   BILLING_ISSUER_ADDRESS_LINE1="Hauptstrasse 1", BILLING_ISSUER_POSTAL_CODE="10117",
                   BILLING_ISSUER_CITY="Berlin", PORT=str(free_port()), WEBSOCKET_PORT=str(free_port()))
    server = subprocess.Popen([DECABILL, "serve"], env=cli_env, cwd=workdir, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        started = ""
        while "decabill.starting" not in started:
            line = server.stdout.readline()
            assert line, "decabill serve exited before starting"
            started += line
    finally:
        server.send_signal(signal.SIGTERM)
        rest = server.communicate(timeout=15)[0]
    assert "billing.issuer_incomplete" not in started + rest


# --- configuration errors: one line naming the variable or the target, exit code 2 (issue #15) ------------------


@pytest.mark.parametrize(("variables", "message"), [
    ({"AUTHENTICATION_METHOD": "magic"}, "AUTHENTICATION_METHOD='magic' is not one of api-key, keycloak, users"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL: unsupported database 'mysql'"),
    ({"DATABASE_URL": None, "DB_HOST": "127.0.0.1", "DB_PORT": "1", "DB_USERNAME": "postgres"},
     "DB_HOST/DB_PORT/DB_USERNAME/DB_PASSWORD/DB_DATABASE: cannot reach PostgreSQL at 127.0.0.1:1"),
    ({"DATABASE_URL": None, "DB_HOST": "/var/run/postgresql", "DB_PORT": "1", "DB_USERNAME": "postgres"},
     "DB_HOST/DB_PORT/DB_USERNAME/DB_PASSWORD/DB_DATABASE: cannot reach PostgreSQL at /var/run/postgresql/.s.PGSQL.1"),
    ({"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/decabill_no_such_database"},
     "DATABASE_URL: database 'decabill_no_such_database' does not exist on PostgreSQL at 127.0.0.1:5432"),
    ({"DATABASE_URL": "sqlite+aiosqlite:///{tmp}/missing/decabill.sqlite3"},
     "DATABASE_URL: the folder {tmp}/missing of the SQLite file does not exist"),
    ({"DATABASE_URL": None, "DECABILL_DATA_DIR": "{tmp}/file/data"},
     "DECABILL_DATA_DIR={tmp}/file/data: the data folder cannot be written ({tmp}/file is not a folder)"),
])
@pytest.mark.parametrize("command", [["serve", "--no-socket"], ["migrate"]])
def test_a_configuration_error_is_one_line_naming_it_and_exit_code_2(workdir, cli_env, tmp_path, command,
                                                                      variables, message):
    (tmp_path / "file").write_text("a file where a folder is expected")
    env = dict(cli_env, PORT=str(free_port()), LOG_LEVEL="info")
    for name, value in variables.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value.format(tmp=tmp_path)
    result = decabill(*command, env=env, cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("decabill: ") and message.format(tmp=tmp_path) in line, line
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "missing").exists()  # a SQLite path in a folder that does not exist is not created
