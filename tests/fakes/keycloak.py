"""Fake Keycloak realm (the part Decabill uses: the realm's JWKS), as a Starlette app, plus a token minter.

Decabill validates Keycloak access tokens offline, so all the fake has to serve is the key set:

    GET /realms/{realm}/protocol/openid-connect/certs      -> {"keys": [JWK, ...]}  (RSA, "use": "sig")
    GET /realms/{realm}/.well-known/openid-configuration   -> issuer + jwks_uri (for completeness)

An unknown realm answers 404 ``{"error": "Realm does not exist"}`` like Keycloak.

Test helpers on :class:`KeycloakState`:
  * ``base_url``                        -> set by FakeCloud: "<fake cloud>/keycloak" (= KEYCLOAK_SERVER_URL)
  * ``issuer``                          -> f"{base_url}/realms/{realm}" (what Keycloak puts in ``iss``)
  * ``mint(sub, email=..., roles=[...], client_roles=..., aud=..., azp=..., exp_delta=..., kid=..., alg=...)``
      -> a signed access token shaped like Keycloak's (realm_access / resource_access roles, azp, typ Bearer).
      ``alg="none"`` gives an unsigned token; ``alg="HS256"`` signs with ``hmac_key`` (default: the current
      public key in PEM, the classic algorithm-confusion forgery); ``signing_key=`` signs with a key the realm
      does not publish.
  * ``rotate(keep_old=True)``           -> a new current key with a new kid; the old one stays published or not
  * ``jwks_requests``                   -> how many times the key set was fetched
  * ``reset()``                         -> one fresh key, counters cleared
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class RealmKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {"kid": self.kid, "kty": "RSA", "alg": "RS256", "use": "sig", "n": jwk["n"], "e": jwk["e"]}


class KeycloakState:
    REALM = "decabill"
    CLIENT_ID = "decabill-console"

    def __init__(self, realm: str = REALM):
        self.realm = realm
        self.base_url = ""
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.keys: list[RealmKey] = [RealmKey(f"kid-{uuid.uuid4().hex[:12]}", new_rsa_key())]
            self.jwks_requests = 0

    # -- keys --
    @property
    def current(self) -> RealmKey:
        return self.keys[-1]

    def rotate(self, keep_old: bool = True) -> str:
        """Publish a new signing key (new kid) and make it current; returns the new kid."""
        key = RealmKey(f"kid-{uuid.uuid4().hex[:12]}", new_rsa_key())
        with self.lock:
            self.keys = [*self.keys, key] if keep_old else [key]
        return key.kid

    def jwks(self) -> dict[str, Any]:
        with self.lock:
            return {"keys": [key.jwk() for key in self.keys]}

    # -- tokens --
    @property
    def issuer(self) -> str:
        return f"{self.base_url}/realms/{self.realm}"

    def mint(
        self,
        sub: str,
        *,
        email: str | None = None,
        username: str | None = None,
        roles: list[str] | tuple[str, ...] = (),
        client_roles: dict[str, list[str]] | list[str] | None = None,
        aud: str | list[str] | None = "account",
        azp: str | None = CLIENT_ID,
        iss: str | None = None,
        exp_delta: int = 300,
        kid: str | None = None,
        alg: str = "RS256",
        signing_key: rsa.RSAPrivateKey | None = None,
        hmac_key: bytes | str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        now = int(time.time())
        if isinstance(client_roles, (list, tuple)):
            client_roles = {azp or self.CLIENT_ID: list(client_roles)}
        claims: dict[str, Any] = {
            "exp": now + exp_delta,
            "iat": now - 1,
            "jti": str(uuid.uuid4()),
            "iss": iss if iss is not None else self.issuer,
            "sub": sub,
            "typ": "Bearer",
            "session_state": str(uuid.uuid4()),
            "scope": "openid email profile",
            "email_verified": True,
            "realm_access": {"roles": ["offline_access", "uma_authorization", *roles]},
            "resource_access": {
                "account": {"roles": ["manage-account", "view-profile"]},
                **{client: {"roles": list(r)} for client, r in (client_roles or {}).items()},
            },
        }
        if aud is not None:
            claims["aud"] = aud
        if azp is not None:
            claims["azp"] = azp
        if email is not None:
            claims["email"] = email
        claims["preferred_username"] = username or (email or sub)
        claims.update(extra or {})
        kid = kid if kid is not None else self.current.kid
        header = {"typ": "JWT", "kid": kid}

        if alg == "none":
            return self._compact({**header, "alg": "none"}, claims, lambda _signing_input: b"")
        if alg.startswith("HS"):
            secret = hmac_key if hmac_key is not None else self.current.public_pem
            secret = secret.encode() if isinstance(secret, str) else secret
            digest = getattr(hashlib, f"sha{alg[2:]}")
            # Signed by hand: PyJWT refuses to use a PEM public key as an HMAC secret, an attacker does not.
            return self._compact({**header, "alg": alg}, claims, lambda data: hmac.new(secret, data, digest).digest())
        private_key = signing_key or self._key(kid).private_key
        return jwt.encode(claims, private_key, algorithm=alg, headers=header)

    def _key(self, kid: str) -> RealmKey:
        for key in self.keys:
            if key.kid == kid:
                return key
        return self.current  # a kid the realm does not know, signed with the current key

    @staticmethod
    def _compact(header: dict[str, Any], claims: dict[str, Any], sign) -> str:
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        return f"{signing_input}.{_b64url(sign(signing_input.encode()))}"


def create_app(state: KeycloakState) -> Starlette:
    def _realm(request: Request) -> JSONResponse | None:
        if request.path_params["realm"] != state.realm:
            return JSONResponse({"error": "Realm does not exist"}, status_code=404)
        return None

    async def certs(request: Request) -> JSONResponse:
        if (missing := _realm(request)) is not None:
            return missing
        with state.lock:
            state.jwks_requests += 1
        return JSONResponse(state.jwks())

    async def openid_configuration(request: Request) -> JSONResponse:
        if (missing := _realm(request)) is not None:
            return missing
        return JSONResponse({
            "issuer": state.issuer,
            "jwks_uri": f"{state.issuer}/protocol/openid-connect/certs",
            "id_token_signing_alg_values_supported": ["RS256"],
        })

    return Starlette(routes=[
        Route("/realms/{realm}/protocol/openid-connect/certs", certs),
        Route("/realms/{realm}/.well-known/openid-configuration", openid_configuration),
    ])
