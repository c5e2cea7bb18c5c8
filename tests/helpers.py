"""Assertions shared by the HTTP tests."""

from __future__ import annotations

ERROR_KEYS = {"statusCode", "message", "error"}


def assert_error(response, status: int, message: str | None = None) -> dict:
    """The contract's ErrorResponse: exact keys, JSON content type, the given status (and message)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["statusCode"] == status
    assert isinstance(body["message"], str)
    if message is not None:
        assert body["message"] == message, body
    return body


async def drain() -> None:
    """Wait until the in-process broker has run everything, including the units that units sent."""
    from decabill.jobs import queue

    broker = queue.get_broker()
    for _ in range(50):
        if not broker._running_tasks:
            return
        await broker.wait_all()
    raise AssertionError("jobs kept running")
