"""Connexion security handler for the spec's `bearerAuth` scheme.

Connexion's built-in bearer handler only understands `Bearer <token>`; ours hands the raw
`Authorization` header to `decabill.identity.auth.authenticate`, which knows the three modes (including
`ApiKey <key>`) and raises our own 401/403 errors with the reference's messages.

`SharedRequestSecurityMiddleware` is Connexion's security middleware whose operations hand the verification the
request's `SharedRequest` (decabill/web/request.py) rather than a `ConnexionRequest` of their own: the headers
parsed for the `Authorization` header are the ones validation and the handler read. Placed in Connexion's
middleware list by decabill/web/stack.py.
"""

from __future__ import annotations

from connexion.middleware.security import SecurityAPI, SecurityMiddleware, SecurityOperation
from connexion.security import AbstractSecurityHandler
from starlette.types import Receive, Scope, Send

from decabill.identity.auth import authenticate
from decabill.web.request import SharedRequest


class DecabillSecurityHandler(AbstractSecurityHandler):
    def get_fn(self, security_scheme, required_scopes):
        async def verify(request):
            principal = await authenticate(request.headers.get("authorization"))
            return {"sub": str(principal.user_id) if principal.user_id else None, "principal": principal}

        return verify


SECURITY_MAP = {"bearer": DecabillSecurityHandler}


class SharedRequestSecurityOperation(SecurityOperation):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.security:  # Connexion's steps, with the shared request
            await self.verification_fn(SharedRequest(scope))
        await self.next_app(scope, receive, send)


class SharedRequestSecurityAPI(SecurityAPI):
    def make_operation(self, operation) -> SharedRequestSecurityOperation:
        return SharedRequestSecurityOperation.from_operation(
            operation, next_app=self.next_app, security_handler_factory=self.security_handler_factory)


class SharedRequestSecurityMiddleware(SecurityMiddleware):
    api_cls = SharedRequestSecurityAPI
