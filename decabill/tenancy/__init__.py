"""The request's tenant: resolved once per request from `X-Tenant` (middleware) or per job, then read
by the repository base (`decabill.repository.Repository`) for every tenant-owned query."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from decabill.errors import BadRequest

DEFAULT_TENANT = "default"
_tenant: contextvars.ContextVar[str] = contextvars.ContextVar("decabill_tenant", default=DEFAULT_TENANT)


class InvalidTenant(BadRequest):
    def __init__(self, value: str):
        super().__init__(f"Invalid tenant: '{value[:64]}' is not a configured tenant")


def current_tenant() -> str:
    return _tenant.get()


def resolve_tenant(header_value: str | None, allowed: list[str]) -> str:
    value = (header_value or "").strip()
    if not value:
        return DEFAULT_TENANT
    if value not in allowed:
        raise InvalidTenant(value)
    return value


def set_tenant(tenant: str) -> contextvars.Token[str]:
    return _tenant.set(tenant)


def reset_tenant(token: contextvars.Token[str]) -> None:
    _tenant.reset(token)


@contextmanager
def bound_tenant(tenant: str) -> Iterator[str]:
    """Run a block (a job, a socket tick) as one tenant."""
    token = _tenant.set(tenant)
    try:
        yield tenant
    finally:
        _tenant.reset(token)
