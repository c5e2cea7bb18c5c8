"""The cost of one log line at LOG_LEVEL=info, with the production logging configuration.

    .venv/bin/python -m bench.log_line              # µs per line, median and best of 7 runs of 20,000 lines

`decabill.logging.configure_logging("info")` as `decabill serve` calls it, then per kind of line the µs of one
call, in-process:
  - the request line, as the request middleware writes it at the end of every request (its request id, method
    and path bound in the context; status, client and duration as arguments);
  - one of our lines outside a request (nothing bound), e.g. a job's;
  - a library's line through the standard library's logging (uvicorn's logger at WARNING);
each with stdout a pipe drained by a `cat` process (as a container runtime's log driver reads it: the write
and the reader's wake-up included) and with stdout /dev/null (the rendering alone, and a cheap write). It prints
one request line too, to show what was measured.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import io
import logging
import os
import statistics
import subprocess
import sys
import timeit
from collections.abc import Iterator


@contextlib.contextmanager
def stdout_to(sink: str) -> Iterator[None]:
    """sys.stdout as a process whose stdout is a pipe or /dev/null has it: block-buffered text over the file."""
    report = sys.stdout
    reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL) if sink == "pipe" else None
    fd = reader.stdin.fileno() if reader else os.open(os.devnull, os.O_WRONLY)
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(fd, "w", closefd=False)), encoding="utf-8")
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = report
        if reader:
            reader.stdin.close()
            reader.wait()
        else:
            os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20_000, help="lines per run (default %(default)s)")
    parser.add_argument("--runs", type=int, default=7, help="runs per kind of line (default %(default)s)")
    args = parser.parse_args()

    import structlog

    from decabill.logging import configure_logging

    context = contextvars.copy_context()  # a request's: what the request middleware binds
    context.run(structlog.contextvars.bind_contextvars, request_id="4f9c2b1e8a7d4c3b9e2f1a0b5c6d7e8f",
                method="GET", path="/api/invoices/summary")

    def kinds() -> list[tuple[str, object]]:
        ours = structlog.get_logger("decabill.http")  # made after configure_logging: loggers keep their stream
        library = logging.getLogger("uvicorn.error")
        return [
            ("request line", lambda: context.run(ours.info, "request", status=200, client="127.0.0.1",
                                                 duration_ms=1.7)),
            ("our line, nothing bound", lambda: ours.info("jobs.started", role="all")),
            ("library line (stdlib logging)", lambda: library.warning("Invalid HTTP request received.")),
        ]

    results = []
    for sink in ("pipe", "devnull"):
        with stdout_to(sink):
            configure_logging("info")
            for name, call in kinds():
                call()  # a logger is made on first use
                per_line = [t / args.lines * 1e6 for t in timeit.repeat(call, number=args.lines, repeat=args.runs)]
                results.append((name, sink, statistics.median(per_line), min(per_line)))
    shown = io.StringIO()
    report, sys.stdout = sys.stdout, shown
    try:
        configure_logging("info")
        kinds()[0][1]()
    finally:
        sys.stdout = report
    print(f"{'line':32} {'stdout':8} {'median µs':>10} {'best µs':>8}")
    for name, sink, median, best in results:
        print(f"{name:32} {sink:8} {median:>10.2f} {best:>8.2f}")
    print("the request line:", shown.getvalue().strip())


if __name__ == "__main__":
    main()
