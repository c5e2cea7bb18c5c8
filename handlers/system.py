"""Operator endpoints without authentication: /config (console bootstrap) and /health."""

from decabill import system


async def get_config():
    return system.public_config(), 200


async def get_health():
    report = await system.health()
    return report, (200 if report["status"] == "ok" else 503)
