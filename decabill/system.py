"""Operator-visible facts: the public console configuration (never a secret), health and readiness."""

from __future__ import annotations

import asyncio

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


READINESS_TIMEOUT_SECONDS = 2.0


async def _redis_answers(url: str) -> bool:
    import redis.asyncio as redis

    client = redis.from_url(url, socket_timeout=READINESS_TIMEOUT_SECONDS,
                            socket_connect_timeout=READINESS_TIMEOUT_SECONDS)
    try:
        return bool(await client.ping())
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False
    finally:
        await client.aclose()


async def _within_timeout(check) -> bool:
    try:
        return await asyncio.wait_for(check, READINESS_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        return False


async def readiness() -> dict:
    """Whether this instance can serve: the database and, when configured, Redis answer (checked side by side)."""
    redis_url = get_settings().redis_url
    database, redis = await asyncio.gather(
        _within_timeout(db.ping()), _within_timeout(_redis_answers(redis_url)) if redis_url else _none())
    report = {"database": "ok" if database else "unreachable",
              "redis": "not_configured" if redis is None else ("ok" if redis else "unreachable")}
    report["status"] = "ready" if database and redis is not False else "unavailable"
    return report


async def _none() -> None:
    return None
