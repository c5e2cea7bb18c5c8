"""A real `decabill serve` process on the test database (each backend), for the abuse-resistance tests:
limits, throttles and forwarded headers are properties of the served process, not of the ASGI app alone."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import httpx
import pytest

import tests.conftest
from tests.conftest import BASE_ENV, CLEARED_ENV, Api
from tests.processes import Served, decabill_server


def api_of(served: Served) -> Api:
    """The tests' `Api` helper, speaking HTTP to the served process."""
    return Api(httpx.AsyncClient(base_url=served.base.removesuffix("/api"), timeout=60))


@pytest.fixture
def serve(tmp_path, smtp_sink):
    """`with serve(database_url, KEY=value, ...) as served:` — a server with the test environment plus overrides."""
    smtp_sink.clear()
    tests.conftest.SMTP_SINK = smtp_sink  # Api.user_token reads confirmation codes from it
    count = 0

    @contextlib.contextmanager
    def start(database_url: str, **overrides: str) -> Iterator[Served]:
        nonlocal count
        count += 1
        env = {key: value for key, value in os.environ.items() if key not in CLEARED_ENV}
        env.update(BASE_ENV, DATABASE_URL=database_url, SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp_sink.port),
                   LOG_LEVEL="warning", **overrides)
        with decabill_server(env, tmp_path, tmp_path / f"serve-{count}.log", timeout=60) as served:
            yield served

    return start
