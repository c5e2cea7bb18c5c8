"""Connexion security handler for the spec's `bearerAuth` scheme.

Connexion's built-in bearer handler only understands `Bearer <token>`; ours hands the raw
`Authorization` header to `decabill.identity.auth.authenticate`, which knows the three modes (including
`ApiKey <key>`) and raises our own 401/403 errors with the reference's messages.
"""

from __future__ import annotations

from connexion.security import AbstractSecurityHandler

from decabill.identity.auth import authenticate


class DecabillSecurityHandler(AbstractSecurityHandler):
    def get_fn(self, security_scheme, required_scopes):
        async def verify(request):
            principal = await authenticate(request.headers.get("authorization"))
            return {"sub": str(principal.user_id) if principal.user_id else None, "principal": principal}

        return verify


SECURITY_MAP = {"bearer": DecabillSecurityHandler}
