"""Authentication: turn an `Authorization` header into a `Principal` for the request's tenant.

Three modes (AUTHENTICATION_METHOD): `api-key` (one static key, acts as admin, no user identity),
`users` (our own HS256 JWTs) and `keycloak` (RS/ES-signed access tokens verified offline against the
realm's JWKS, then linked to a local user row). The same function serves HTTP and Socket.IO.
"""

from __future__ import annotations

import asyncio
import hmac
import uuid

import jwt
import structlog

from decabill import db
from decabill.config import get_settings
from decabill.errors import DecabillError, Forbidden, Unauthorized
from decabill.identity.credentials import CREDENTIAL_VERSION_CLAIM, decode_token
from decabill.identity.keycloak import authenticate_keycloak
from decabill.identity.principal import SESSION_INVALID, Principal, ensure_usable
from decabill.identity.repository import UserRepository
from decabill.identity.verified_tokens import verified_tokens
from decabill.tenancy import current_tenant

log = structlog.get_logger("decabill.identity.auth")

async def authenticate(authorization: str | None) -> Principal:
    method = get_settings().authentication_method
    if method == "api-key":
        return _authenticate_api_key(authorization)
    if method == "users":
        return await _authenticate_users_jwt(authorization)
    return await authenticate_keycloak(_bearer_token(authorization))


def _authenticate_api_key(authorization: str | None) -> Principal:
    settings = get_settings()
    expected = settings.static_api_key or ""
    if not expected:
        raise Unauthorized(
            "API key authentication is configured but STATIC_API_KEY is not set. "
            "Set STATIC_API_KEY or use a different AUTHENTICATION_METHOD."
        )
    if not authorization:
        raise Unauthorized("Missing authorization header")
    parts = authorization.split(" ")
    if len(parts) != 2:
        raise Unauthorized("Invalid authorization header format")
    scheme, key = parts
    # compare_digest keeps the comparison time independent of where the strings differ.
    if scheme not in ("Bearer", "ApiKey") or not hmac.compare_digest(key.encode(), expected.encode()):
        raise Unauthorized("Invalid API key")
    tenant = current_tenant()
    bound = (settings.static_api_key_tenant_id or "").strip()
    if bound and bound != tenant:
        raise Forbidden("Access denied")
    return Principal(tenant=tenant, role="admin", method="api-key")


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("Missing or invalid authorization token")
    scheme, _, token = authorization.partition(" ")
    if scheme != "Bearer" or not token.strip():
        raise Unauthorized("Missing or invalid authorization token")
    return token.strip()


async def _authenticate_users_jwt(authorization: str | None) -> Principal:
    token = _bearer_token(authorization)
    key = (db.generation(), current_tenant(), token)
    principal = verified_tokens.get(key)  # verified less than a second ago (decabill/identity/verified_tokens.py)
    if principal is not None:
        epoch = verified_tokens.claim_refresh(key)
        if epoch is not None:  # due for a re-check: in the background, this request is answered meanwhile
            task = db.background_task(_check_again(token, key, epoch))
            _rechecks.add(task)
            task.add_done_callback(_rechecks.discard)
        return principal
    epoch = verified_tokens.epoch
    principal, expiry = await _verify_users_jwt(token)
    verified_tokens.put(key, principal, expiry, epoch=epoch)
    return principal


_rechecks: set[asyncio.Task] = set()  # the running re-checks (the loop keeps only weak references to tasks)


async def _check_again(token: str, key: tuple[int, str, str], epoch: int) -> None:
    """Renew the cached verification of a token in use, or drop it when the token is no longer valid."""
    try:
        principal, expiry = await _verify_users_jwt(token)
    except DecabillError:  # no longer valid (ended, locked, deleted): the next request is refused
        verified_tokens.forget(key)
    except Exception:  # noqa: BLE001 - the entry expires as it would have; the next request verifies itself
        log.warning("auth.recheck_failed", exc_info=True)
    else:
        verified_tokens.put(key, principal, expiry, epoch=epoch)
    finally:
        verified_tokens.refreshed(key)


async def _verify_users_jwt(token: str) -> tuple[Principal, float]:
    """The principal of a users-mode token and the token's expiry (epoch seconds), checked against the user's
    row; Unauthorized when the token is not (or no longer) valid."""
    try:
        claims = decode_token(token)
        user_id = uuid.UUID(str(claims["sub"]))
        credential_version = claims[CREDENTIAL_VERSION_CLAIM]
    except (jwt.PyJWTError, ValueError, KeyError):
        raise Unauthorized("Invalid or expired token") from None
    async with db.read() as session:
        # Looked up in any tenant on purpose: a token of tenant A used with X-Tenant B is a 401.
        user = await UserRepository(session).get_in_any_tenant(user_id)
    ensure_usable(user)
    assert user is not None
    if credential_version != user.credential_version:
        # Issued before the password, the lock or the role changed: the token died with that change.
        raise Unauthorized(SESSION_INVALID)
    # The role is the account's (the token's `roles` claim is only informative for clients): equal as long as
    # the credential version is, and a role change has moved the version on.
    principal = Principal(tenant=user.tenant_id, role=user.role, method="users", user_id=user.id, email=user.email)
    return principal, float(claims["exp"])
