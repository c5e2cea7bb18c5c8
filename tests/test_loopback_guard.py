"""The loopback guard (tests/guard/sitecustomize.py): a test run never reaches beyond 127.0.0.0/8."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import CLOSED_PORT, LOOPBACK_REPORT, loopback_guard, loopback_violations

OUTSIDE = "192.0.2.1"  # TEST-NET-1: never routed, so even a broken guard would not reach anyone


@pytest.fixture
def forget_violations():
    """These tests provoke violations on purpose: take them out of the report again."""
    before = LOOPBACK_REPORT.read_text(encoding="utf-8")
    yield
    LOOPBACK_REPORT.write_text(before, encoding="utf-8")


def test_a_connection_outside_loopback_is_refused_and_reported(forget_violations):
    before = len(loopback_violations())
    with socket.socket() as sock, pytest.raises(PermissionError, match="loopback guard"):
        sock.connect((OUTSIDE, 22))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(PermissionError):
        sock.sendto(b"x", (OUTSIDE, 53))
    new = loopback_violations()[before:]
    assert len(new) == 2 and all(OUTSIDE in line for line in new), new


def test_child_python_processes_are_guarded_too(forget_violations):
    before = len(loopback_violations())
    code = f"import socket; socket.create_connection(({OUTSIDE!r}, 22), timeout=5)"
    result = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "loopback guard" in result.stderr, result.stderr
    assert [f"{OUTSIDE}:22" in line for line in loopback_violations()[before:]] == [True]


def test_loopback_connections_pass():
    before = len(loopback_violations())
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.9", CLOSED_PORT))  # allowed (and refused by the closed port, as the SSH job is)
    assert all(loopback_guard.is_local(h) for h in ("127.0.0.1", "127.255.0.3", "::1", "::ffff:127.0.0.1",
                                                   "localhost", "0.0.0.0"))
    assert not any(loopback_guard.is_local(h) for h in (OUTSIDE, "10.0.0.1", "2001:db8::1", "example.com", None))
    assert loopback_violations()[before:] == []
