"""Authentication: turn an `Authorization` header into a `Principal` for the request's tenant.

Three modes (AUTHENTICATION_METHOD): `api-key` (one static key, acts as admin, no user identity),
`users` (our own HS256 JWTs) and `keycloak` (RS/ES-signed access tokens verified offline against the
realm's JWKS, then linked to a local user row). The same function serves HTTP and Socket.IO.
"""

from __future__ import annotations

import hmac
import uuid

import jwt

from decabill import db
from decabill.config import get_settings
from decabill.errors import Forbidden, Unauthorized
from decabill.identity.credentials import CREDENTIAL_VERSION_CLAIM, decode_token
from decabill.identity.keycloak import authenticate_keycloak
from decabill.identity.principal import SESSION_INVALID, Principal, ensure_usable
from decabill.identity.repository import UserRepository
from decabill.identity.verified_tokens import verified_tokens
from decabill.tenancy import current_tenant

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
        return principal
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
    verified_tokens.put(key, principal, float(claims["exp"]))
    return principal
