"""The loopback guard: tests and benchmarks contact nothing outside 127.0.0.0/8 (and ::1).

An audit hook (`sys.addaudithook`) sees every `socket.connect` / `socket.sendto` of the process. An internet
address is refused on the spot (`PermissionError`, so the code under test sees an ordinary connection failure
instead of reaching the network) and recorded, one line per attempt, in the file named by
DECABILL_TEST_LOOPBACK_REPORT; tests/conftest.py fails the test during which a line appeared.

tests/conftest.py installs it in the test process and puts this folder on PYTHONPATH, so every Python child
process a test starts (`decabill socket`, `decabill serve`, the benchmark's workers) imports it as its
`sitecustomize` and is guarded the same way. Self-contained on purpose: a child cannot import `tests`.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys

REPORT_ENV = "DECABILL_TEST_LOOPBACK_REPORT"
_EVENTS = frozenset({"socket.connect", "socket.sendto"})
_INET = (socket.AF_INET, socket.AF_INET6)
_installed = False


def is_local(host: object) -> bool:
    """Loopback (127.0.0.0/8, ::1, also IPv4-mapped), `localhost`, or the unspecified address (this host)."""
    if not isinstance(host, str):
        return False
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:  # any other name: connect() only sees names nobody resolved, and those are not allowed
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    return address.is_loopback or address.is_unspecified


def _report(line: str) -> None:
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(line + "\n")


def _hook(event: str, args: tuple) -> None:
    if event not in _EVENTS:
        return
    sock, address = args[0], args[-1]
    if getattr(sock, "family", None) not in _INET or not isinstance(address, tuple) or not address:
        return
    if is_local(address[0]):
        return
    line = f"pid {os.getpid()} {event} {address[0]}:{address[1] if len(address) > 1 else '?'} ({sys.argv[0]})"
    _report(line)
    raise PermissionError(f"loopback guard: {event} to {address[0]} refused (tests contact only 127.0.0.0/8)")


def install() -> None:
    """Guard this process (once; audit hooks cannot be removed)."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True


if os.environ.get(REPORT_ENV):
    install()
