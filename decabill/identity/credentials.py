"""Password hashes, one-time codes and the users-mode JWT."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import secrets
import string
import uuid

import bcrypt
import jwt

from decabill.config import get_settings

CODE_ALPHABET = string.ascii_uppercase + string.digits
CODE_LENGTH = 6
JWT_ALGORITHM = "HS256"
# The user's credential version when the token was issued (models/identity.py User.credential_version).
CREDENTIAL_VERSION_CLAIM = "cv"


def new_code() -> str:
    """A 6-character confirmation / reset code (A-Z, 0-9) from a CSPRNG."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


async def hash_secret(secret: str) -> str:
    # bcrypt is deliberately slow; keep it off the event loop.
    rounds = get_settings().password_hash_rounds
    hashed = await asyncio.to_thread(bcrypt.hashpw, secret.encode(), bcrypt.gensalt(rounds))
    return hashed.decode()


# bcrypt reads at most 72 bytes (bcrypt 5 refuses more: ValueError). Passwords are refused beyond that when set
# (identity.service `_validate_password`), so a longer one matches nothing stored; it is checked on its first 72
# bytes all the same, for the same work and time as any other.
BCRYPT_MAX_BYTES = 72


def _checked_bytes(secret: str) -> bytes:
    return secret.encode()[:BCRYPT_MAX_BYTES]


async def verify_secret(secret: str, hashed: str | None) -> bool:
    if not hashed:
        return False
    try:
        matched = await asyncio.to_thread(bcrypt.checkpw, _checked_bytes(secret), hashed.encode())
    except ValueError:  # malformed stored hash
        return False
    return matched and len(secret.encode()) <= BCRYPT_MAX_BYTES


@functools.cache
def _stand_in_hash(rounds: int) -> bytes:
    return bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds))


async def verify_password(password: str, hashed: str | None) -> bool:
    """Checks a sign-in password with the same bcrypt work whether or not there is a hash to check it
    against (an unknown email, an account without password): the answer's timing tells nothing."""
    if hashed:
        return await verify_secret(password, hashed)
    stand_in = _stand_in_hash(get_settings().password_hash_rounds)
    await asyncio.to_thread(bcrypt.checkpw, _checked_bytes(password), stand_in)
    return False


def issue_token(user_id: uuid.UUID, email: str, role: str, tenant: str, credential_version: int) -> str:
    settings = get_settings()
    now = dt.datetime.now(dt.timezone.utc)
    claims = {
        "sub": str(user_id),
        "email": email,
        "roles": [role],
        "tenant": tenant,
        CREDENTIAL_VERSION_CLAIM: credential_version,
        "iat": int(now.timestamp()),
        "exp": int((now + dt.timedelta(days=settings.jwt_expiry_days)).timestamp()),
    }
    return jwt.encode(claims, (settings.jwt_secret or "").strip(), algorithm=JWT_ALGORITHM)


def decode_token(token: str) -> dict:
    """Verify signature (HS256 only: `none` and every other algorithm are refused) and expiry."""
    secret = (get_settings().jwt_secret or "").strip()
    return jwt.decode(
        token,
        secret,
        algorithms=[JWT_ALGORITHM],
        options={"require": ["sub", "exp", "iat", CREDENTIAL_VERSION_CLAIM]},
    )
