"""Keycloak access tokens, verified offline against the realm's JWKS, then linked to a local user.

The key set is cached (KEYCLOAK_JWKS_CACHE_SECONDS) and fetched again when a token names an unknown
`kid` (key rotation), at most once every few seconds so garbage tokens cannot hammer Keycloak.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
import structlog

from decabill import db
from decabill.config import get_settings
from decabill.errors import Unauthorized
from decabill.identity.principal import LOCKED_MESSAGE, Principal, ensure_usable
from decabill.identity.repository import UserRepository
from decabill.tenancy import current_tenant
from models.identity import User

log = structlog.get_logger(__name__)

ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
_MIN_REFRESH_SECONDS = 5.0


async def fetch_key_set(url: str) -> jwt.PyJWKSet:
    """The realm's signing keys from its JWKS URL (raises httpx / PyJWT errors)."""
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
        response.raise_for_status()
        return jwt.PyJWKSet.from_dict(response.json())


class _JwksCache:
    def __init__(self) -> None:
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    def clear(self) -> None:
        self._keys = {}
        self._fetched_at = 0.0

    async def key_for(self, kid: str) -> jwt.PyJWK:
        if kid in self._keys and self._age() < get_settings().keycloak_jwks_cache_seconds:
            return self._keys[kid]
        async with self._lock:
            stale = self._age() >= get_settings().keycloak_jwks_cache_seconds
            rotated = kid not in self._keys and self._age() >= _MIN_REFRESH_SECONDS
            if stale or rotated:
                await self._fetch(get_settings().keycloak_jwks_url or "")
        if kid not in self._keys:
            raise Unauthorized("Unauthorized")
        return self._keys[kid]

    def _age(self) -> float:
        return time.monotonic() - self._fetched_at if self._fetched_at else float("inf")

    async def _fetch(self, url: str) -> None:
        try:
            key_set = await fetch_key_set(url)
        except (httpx.HTTPError, jwt.PyJWTError, ValueError) as exc:
            log.warning("keycloak.jwks_fetch_failed", url=url, error=str(exc))
            raise Unauthorized("Unauthorized") from None
        self._keys = {key.key_id: key for key in key_set.keys if key.key_id}
        self._fetched_at = time.monotonic()


jwks_cache = _JwksCache()


def token_roles(claims: dict) -> set[str]:
    client_id = get_settings().keycloak_client_id
    roles = set((claims.get("realm_access") or {}).get("roles") or [])
    for client, access in (claims.get("resource_access") or {}).items():
        if client_id is None or client == client_id:
            roles.update((access or {}).get("roles") or [])
    return roles


async def verify_access_token(token: str) -> dict:
    settings = get_settings()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthorized("Unauthorized") from None
    if header.get("alg") not in ASYMMETRIC_ALGORITHMS or not header.get("kid"):
        raise Unauthorized("Unauthorized")
    key = await jwks_cache.key_for(header["kid"])
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=ASYMMETRIC_ALGORITHMS,
            issuer=settings.keycloak_issuer,
            options={"require": ["exp", "iat", "sub", "iss"], "verify_aud": False},
        )
    except jwt.PyJWTError:
        raise Unauthorized("Unauthorized") from None
    # Keycloak puts the client in `azp`; `aud` may only name "account". Accept either.
    client_id = settings.keycloak_client_id
    if client_id:
        audience = claims.get("aud") or []
        audience = [audience] if isinstance(audience, str) else audience
        if client_id not in audience and claims.get("azp") != client_id:
            raise Unauthorized("Unauthorized")
    return claims


async def authenticate_keycloak(token: str) -> Principal:
    claims = await verify_access_token(token)
    user = await _sync_local_user(claims)
    ensure_usable(user)
    role = "admin" if user.is_admin or "admin" in token_roles(claims) else "user"
    return Principal(tenant=user.tenant_id, role=role, method="keycloak", user_id=user.id, email=user.email)


def _email_of(claims: dict, sub: str) -> str:
    """The token's `email`, else `preferred_username` when the realm logs in by address, else `<sub>@keycloak`.

    A plain username ("jdoe") is no email address: storing it would break every UserResponse."""
    for candidate in (claims.get("email"), claims.get("preferred_username")):
        if isinstance(candidate, str) and "@" in candidate.strip():
            return candidate.strip().lower()
    return f"{sub}@keycloak".lower()


async def _sync_local_user(claims: dict) -> User:
    """Find the tenant's user for this Keycloak subject, link it by email, or create it."""
    tenant = current_tenant()
    sub = str(claims["sub"])
    email = _email_of(claims, sub)
    async with db.transaction() as session:
        users = UserRepository(session)
        user = await users.get_by_keycloak_sub(sub)
        if user is not None:
            return user
        # First sight of this subject in the tenant. Serialise with other first sign-ins (and sign-ups) so
        # simultaneous requests neither insert the subject twice nor make two "first" admins; then look again.
        await db.advisory_lock(session, f"users:first:{tenant}")
        user = await users.get_by_keycloak_sub(sub)
        if user is not None:
            return user
        by_email = await users.get_by_email(email)
        if by_email is not None:
            if by_email.is_locked:
                raise Unauthorized(LOCKED_MESSAGE)
            by_email.keycloak_sub = sub
            by_email.touch()
            return by_email
        first = await users.count() == 0
        return await users.create(User(
            email=email,
            keycloak_sub=sub,
            role="admin" if first else "user",
            email_confirmed_at=db.utcnow(),
        ))
