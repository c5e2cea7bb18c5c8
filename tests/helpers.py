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
