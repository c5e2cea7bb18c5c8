"""Operator endpoints without authentication: /config (console bootstrap), /health and /health/ready."""

from decabill import system


async def get_config():
    return system.public_config(), 200


async def get_health():
    report = await system.health()
    return report, (200 if report["status"] == "ok" else 503)


async def get_readiness():
    report = await system.readiness()
    return report, (200 if report["status"] == "ready" else 503)
