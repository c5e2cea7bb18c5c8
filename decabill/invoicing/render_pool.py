"""Invoice PDFs of the billing day rendered in a pool of processes (issue #19).

A render is ~13 ms of CPU-bound Python. In a thread of the worker it holds the GIL against the event loop,
whose claims, loads and writes then wait for it; in a process of its own it only takes a core. The pool has
one process per core the worker may use, started with `spawn` (a fork would copy the event loop's threads
and connections), each loading the fonts once and keeping them. It is handed plain data (a frozen
`decabill.documents` document) and the file to store the PDF in, writes the file itself and answers the
bytes (for the mail): no database, no settings. Writing ~50 kB per PDF (a folder, a temporary file, a
rename) from the worker took ~11 % of a billing-day worker's GIL-holding time (issue #19); here it runs
next to the render, on the pool's core.

A pool process whose worker died (kill -9) sees its parent gone and exits: nothing else would end it.
A pool broken by a dead process (out of memory) is replaced at the next render.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def size() -> int:
    """One process per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _pool_of_this_process() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=size(), mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_started, initargs=(os.getpid(),))
        return _pool


def _started(parent: int) -> None:
    threading.Thread(target=_exit_with, args=(parent,), name="decabill-render-parent", daemon=True).start()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def store(path: Path, content: bytes) -> None:
    """Write `content` to `path` under a temporary name, then rename it: a reader never sees half a file, and
    two writers of the same content just write it twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)


def _rendered_and_stored(function: Callable[[Any], bytes], document: Any, path: Path) -> tuple[bytes, str | None]:
    """(In a pool process.) `function(document)`, stored at `path`; the bytes and why the file could not be
    written (None when it was)."""
    content = function(document)
    try:
        store(path, content)
    except OSError as exc:
        return content, str(exc)
    return content, None


async def render(function: Callable[[Any], bytes], document: Any, path: Path) -> tuple[bytes, str | None]:
    """`function(document)` in a pool process, which also stores the result at `path` (`store`): the bytes,
    and the error of a file that could not be written — a read-only or full disk; the bytes are still good
    (None when it was written). The function and the document are pickled: module-level function, plain data."""
    pool = _pool_of_this_process()
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, _rendered_and_stored, function, document, path)
    except BrokenProcessPool:
        _discard(pool)
        raise


def _discard(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)
