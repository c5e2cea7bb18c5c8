"""Operator-visible facts: the public console configuration (never a secret) and health."""

from __future__ import annotations

from decabill import db
from decabill.config import get_settings
from decabill.tenancy import current_tenant


def public_config() -> dict:
    settings = get_settings()
    keycloak = None
    if settings.authentication_method == "keycloak":
        keycloak = {
            "serverUrl": settings.keycloak_auth_server_url or settings.keycloak_server_url or "",
            "realm": settings.keycloak_realm or "",
            "clientId": settings.keycloak_client_id or "",
        }
    return {
        "authenticationMethod": settings.authentication_method,
        "keycloak": keycloak,
        "signupEnabled": settings.authentication_method == "users" and not settings.signup_disabled,
        "websocket": {"port": settings.websocket_port, "namespace": settings.websocket_namespace},
        "currency": settings.billing_currency,
        "taxRates": {
            "standard": float(settings.billing_tax_rate_standard),
            "reduced": float(settings.billing_tax_rate_reduced),
        },
        "tenant": current_tenant(),
    }


async def health() -> dict:
    reachable = await db.ping()
    return {"status": "ok" if reachable else "degraded", "database": "ok" if reachable else "unreachable"}
