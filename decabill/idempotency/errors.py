from __future__ import annotations

from decabill.errors import BadRequest, Conflict, UnprocessableEntity


class IdempotencyKeyInvalid(BadRequest):
    def __init__(self) -> None:
        super().__init__("Idempotency-Key must be 1 to 255 printable ASCII characters")


class IdempotencyKeyReused(UnprocessableEntity):
    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was already used with a different request")


class IdempotentRequestInProgress(Conflict):
    def __init__(self) -> None:
        super().__init__("A request with this Idempotency-Key is still being processed; retry later")
