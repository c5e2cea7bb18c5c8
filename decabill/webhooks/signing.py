"""Signatures of webhook deliveries, in the style of Stripe's: the header

    Decabill-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" with the endpoint's secret>

(with one `v1=` per secret while a rotated secret is still valid: the new one first, then the replaced one)

A receiver recomputes the HMAC over the raw body it received and compares in constant time, and refuses a
timestamp too far from its clock (a replayed old delivery). `verify()` is that check, for Python receivers
(`from decabill.webhooks.signing import verify`); the TypeScript client has the same as `verifyWebhookSignature`.
A receiver accepts a delivery when any `v1` matches, so it can switch to a rotated secret at any moment of the
overlap (WEBHOOK_SECRET_OVERLAP_HOURS); during it a receiver may also pass both secrets to `verify()`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable

HEADER = "Decabill-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str | Iterable[str], body: bytes, timestamp: int | None = None) -> str:
    """The header for `body`, signed by `secret`, or by each of several (one `v1=` each, in that order)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signing_secrets = [secret] if isinstance(secret, str) else list(secret)
    return ",".join([f"t={timestamp}", *(f"{SCHEME}={_mac(s, timestamp, body)}" for s in signing_secrets)])


def verify(body: bytes | str, header: str | None, secret: str | Iterable[str], *,
           tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> bool:
    """True when `header` is a valid signature of the raw `body` by (one of) the secret(s), made within
    `tolerance` seconds of `now`."""
    if not header:
        return False
    raw = body.encode() if isinstance(body, str) else body
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == SCHEME:
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    candidates = [secret] if isinstance(secret, str) else list(secret)
    return any(hmac.compare_digest(_mac(s, timestamp, raw), given) for s in candidates for given in signatures)
