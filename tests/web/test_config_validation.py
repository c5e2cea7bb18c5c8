"""A wrong environment variable stops start-up with ONE clear line naming it: exit code 2, no traceback
(decabill/config.py; behavior.md part A §1.4). Runs the installed `decabill` command in a subprocess."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

DECABILL = str(Path(sys.executable).with_name("decabill"))
VALID_KEY = base64.b64encode(b"v" * 32).decode()


@pytest.fixture
def run_migrate(tmp_path):
    """`decabill migrate` with a small valid environment plus `overrides` (None removes a variable)."""

    def run(**overrides: str | None) -> subprocess.CompletedProcess:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'decabill.sqlite3'}",
            "AUTHENTICATION_METHOD": "users",
            "JWT_SECRET": "a-valid-jwt-secret",
            "ENCRYPTION_KEY": VALID_KEY,
        }
        env.update(overrides)
        env = {key: value for key, value in env.items() if value is not None}
        return subprocess.run([DECABILL, "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)

    return run


def assert_one_line_naming(result: subprocess.CompletedProcess, variable: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert variable in lines[0], lines[0]
    return lines[0]


def test_the_valid_base_environment_starts(run_migrate):
    result = run_migrate()
    assert result.returncode == 0, result.stderr
    assert "database is up to date" in result.stdout


@pytest.mark.parametrize(
    "overrides, variable",
    [
        pytest.param({"PORT": "abc"}, "PORT", id="port-not-a-number"),
        pytest.param({"PORT": "70000"}, "PORT", id="port-out-of-range"),
        pytest.param({"JWT_SECRET": None}, "JWT_SECRET", id="users-mode-without-jwt-secret"),
        pytest.param({"JWT_SECRET": "   "}, "JWT_SECRET", id="users-mode-with-blank-jwt-secret"),
        pytest.param({"AUTHENTICATION_METHOD": "keycloak"}, "KEYCLOAK_SERVER_URL", id="keycloak-mode-without-server"),
        pytest.param({"ENCRYPTION_KEY": "short"}, "ENCRYPTION_KEY", id="encryption-key-too-short"),
        pytest.param({"ENCRYPTION_KEY": base64.b64encode(b"x" * 16).decode()}, "ENCRYPTION_KEY",
                     id="encryption-key-16-bytes"),
        pytest.param({"NODE_ENV": "production", "ENCRYPTION_KEY": None}, "ENCRYPTION_KEY",
                     id="production-without-encryption-key"),
        pytest.param({"RATE_LIMIT_LIMIT": "0"}, "RATE_LIMIT_LIMIT", id="rate-limit-zero"),
        pytest.param({"RATE_LIMIT_TTL": "soon"}, "RATE_LIMIT_TTL", id="rate-limit-ttl-not-a-number"),
        pytest.param({"WEBSOCKET_PORT": "-1"}, "WEBSOCKET_PORT", id="websocket-port-negative"),
        pytest.param({"BILLING_CURRENCY": "EURO"}, "BILLING_CURRENCY", id="currency-not-iso-4217-length"),
        pytest.param({"QUEUE_ROLE": "everything"}, "QUEUE_ROLE", id="queue-role-unknown"),
    ],
)
def test_a_wrong_value_stops_start_up_with_one_line_naming_the_variable(run_migrate, overrides, variable):
    assert_one_line_naming(run_migrate(**overrides), variable)


def test_the_message_does_not_echo_a_secret_value(run_migrate):
    secret = "bm90LTMyLWJ5dGVzLWJ1dC1zZWNyZXQ="  # valid base64, wrong length
    line = assert_one_line_naming(run_migrate(ENCRYPTION_KEY=secret), "ENCRYPTION_KEY")
    assert secret not in line


def test_serve_validates_the_same_way(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AUTHENTICATION_METHOD": "users",
           "JWT_SECRET": "a-valid-jwt-secret", "PORT": "not-a-port",
           "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'decabill.sqlite3'}"}
    result = subprocess.run([DECABILL, "serve"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert_one_line_naming(result, "PORT")
