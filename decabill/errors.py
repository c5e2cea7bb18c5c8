"""The one domain error tree. Each class fixes its HTTP status; the app turns any of them into the
contract's `ErrorResponse` body `{statusCode, message, error}` in one handler (decabill/web/errors.py, registered by decabill/web/app.py)."""

from __future__ import annotations

import math
import uuid
from http import HTTPStatus

import inflection


class DecabillError(Exception):
    status: HTTPStatus = HTTPStatus.BAD_REQUEST

    def __init__(self, message: str | None = None):
        self.message = message or self.status.phrase
        super().__init__(self.message)

    @property
    def headers(self) -> dict[str, str]:
        """Response headers the error's status needs (e.g. Retry-After of a 429)."""
        return {}

    # Connexion's security layer ranks failures by these attribute names.
    @property
    def status_code(self) -> int:
        return int(self.status)


class BadRequest(DecabillError):
    status = HTTPStatus.BAD_REQUEST


class Unauthorized(DecabillError):
    status = HTTPStatus.UNAUTHORIZED


class Forbidden(DecabillError):
    status = HTTPStatus.FORBIDDEN


class NotFound(DecabillError):
    status = HTTPStatus.NOT_FOUND


class Conflict(DecabillError):
    status = HTTPStatus.CONFLICT


class UnprocessableEntity(DecabillError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY


class StillReferenced(Conflict):
    """A row other rows still point at (plans of a type, subscriptions of a plan, invoices of a user).
    `users` lists (table label, row count), e.g. `[("open positions", 2)]`."""

    def __init__(self, what: str, record_id: uuid.UUID, users: list[tuple[str, int]], hint: str) -> None:
        listed = ", ".join(f"{n} {label if n != 1 else inflection.singularize(label)}" for label, n in users)
        super().__init__(f"{what} with ID {record_id} is still used by {listed}; {hint}")


class PayloadTooLarge(DecabillError):
    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE

    def __init__(self, limit: int) -> None:
        super().__init__(f"Request body is larger than {limit} bytes")


class TooManyRequests(DecabillError):
    status = HTTPStatus.TOO_MANY_REQUESTS

    def __init__(self, message: str | None = None, retry_after: float = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": retry_after_header(self.retry_after)}


def retry_after_header(seconds: float) -> str:
    """Whole seconds, rounded up (a client that waits exactly this long is let through)."""
    return str(max(1, math.ceil(seconds)))


class ServiceUnavailable(DecabillError):
    status = HTTPStatus.SERVICE_UNAVAILABLE


class CapabilityNotAvailable(DecabillError):
    """An operation of the contract whose capability has not landed yet (see the README's roadmap)."""

    status = HTTPStatus.NOT_IMPLEMENTED

    def __init__(self, capability: str):
        super().__init__(f"{capability} is not available yet in this version of Decabill")


class UserNotAuthenticated(BadRequest):
    """An operation needs an end-user id but the caller (e.g. the static API key) has none."""

    def __init__(self) -> None:
        super().__init__("User not authenticated")


def error_body(status: int, message: str) -> dict:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {"statusCode": status, "message": message, "error": phrase}
