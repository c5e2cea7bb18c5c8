"""Who is calling: the `Principal` every service takes, and the account checks shared by the three
authentication modes (`decabill.identity.auth`, `decabill.identity.keycloak`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from decabill.errors import Forbidden, Unauthorized, UserNotAuthenticated
from decabill.tenancy import current_tenant
from models.identity import User

LOCKED_MESSAGE = "This account is locked. Please contact an administrator."
SESSION_INVALID = "Session is no longer valid."


@dataclass(frozen=True)
class Principal:
    tenant: str
    role: str
    method: str  # "api-key" | "users" | "keycloak" | "system"
    user_id: uuid.UUID | None = None
    email: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require_user_id(self) -> uuid.UUID:
        """Operations on "own" data need an end user; the static API key has none."""
        if self.user_id is None:
            raise UserNotAuthenticated()
        return self.user_id


def ensure_usable(user: User | None) -> None:
    """A token is only as good as the account behind it: gone, locked or foreign-tenant users → 401."""
    if user is None:
        raise Unauthorized(SESSION_INVALID)
    if user.is_locked:
        raise Unauthorized(LOCKED_MESSAGE)
    if (user.tenant_id or "default") != current_tenant():
        raise Unauthorized(SESSION_INVALID)


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("Forbidden resource")
