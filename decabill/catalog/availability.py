"""Availability checks (behavior.md part A §4.7 with decision D18): the service type's own provider is
asked — Hetzner and DigitalOcean really; a service type whose provider is not registered (a product
without provisioning, D24) is always available. Every check leaves an audit snapshot."""

from __future__ import annotations

import json
import uuid
from typing import Any

from decabill import db
from decabill.catalog.repository import AvailabilitySnapshotRepository
from decabill.catalog.service import find_service_type
from decabill.identity.principal import Principal
from decabill.providers import AvailabilityResult, get_registry

SNAPSHOT_TEXT_LIMIT = 255


def _storable(value: str) -> str:
    """Audit columns take what the caller sent, trimmed to the column and free of NUL characters."""
    value = value.replace("\x00", "")[:SNAPSHOT_TEXT_LIMIT]
    return value.encode("utf-8", "replace").decode("utf-8")


async def check_availability(principal: Principal, service_type_id: uuid.UUID, region: str, server_type: str,
                             requested_config: dict[str, Any] | None = None) -> AvailabilityResult:
    """`requestedConfig` is accepted as in the reference; the provider is the service type's (D18), not
    `requestedConfig.provider`."""
    async with db.transaction():
        service_type = await find_service_type(service_type_id)
    provider = get_registry().get(service_type.provider)
    if provider is None:
        result = AvailabilityResult(True)
    else:
        result = await provider.check_availability(region, server_type)
    async with db.transaction() as session:
        AvailabilitySnapshotRepository(session).record(
            service_type_id=service_type.id, provider=_storable(service_type.provider),
            region=_storable(region), server_type=_storable(server_type), is_available=result.is_available,
            reason=result.reason, raw_response=json.loads(json.dumps(result.raw or {}, default=str)),
        )
    return result
