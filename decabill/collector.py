"""The garbage collector's settings for a long-running process (`decabill serve`, its HTTP workers, the socket
gateway, job workers), applied once start-up has loaded everything.

At the default thresholds (700, 10, 10) a full collection ran every few seconds and scanned every object start-up
had loaded (the parsed spec, Connexion's validators, SQLAlchemy's mappers: ~260,000 objects), stopping the event
loop 100–130 ms each time in an API process (measured with a per-request latency recorder: every in-flight request
waited, p99 at 50 connections 97–135 ms against 24 ms with these settings), and 2.3–2.8 s in a gateway with 10,000
sockets (bench/dashboard.py) — whatever lived through a request or a tick was promoted to the oldest generation,
and each 25 % promoted triggers one.
* `gc.freeze()`: what start-up loaded is never garbage; no collection scans it again.
* Young collections 70 times rarer promote only what lives much longer.
A collection that still stops the process for SLOW_COLLECTION_SECONDS is logged (`gc.slow_collection`).
"""

from __future__ import annotations

import gc
import time

import structlog

THRESHOLDS = (50_000, 20, 10)
SLOW_COLLECTION_SECONDS = 0.1
_collection_started = [0.0]

log = structlog.get_logger(__name__)


def _log_slow_collection(phase: str, info: dict) -> None:
    if phase == "start":
        _collection_started[0] = time.perf_counter()
        return
    took = time.perf_counter() - _collection_started[0]
    if took >= SLOW_COLLECTION_SECONDS:  # the event loop stood still meanwhile
        log.warning("gc.slow_collection", generation=info["generation"], ms=round(took * 1000))


def tune_after_start_up() -> None:
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    if _log_slow_collection not in gc.callbacks:
        gc.callbacks.append(_log_slow_collection)
