"""Queries on the catalog's tables: service types, service plans, availability snapshots."""

from __future__ import annotations

import uuid
from typing import Any

from decabill.repository import Repository, page
from models.catalog import AvailabilitySnapshot, ServicePlan, ServiceType


class ServiceTypeRepository(Repository[ServiceType]):
    model = ServiceType

    async def newest_first(self, limit: int | None, offset: int | None) -> list[ServiceType]:
        return await self.page(self.statement().order_by(ServiceType.created_at.desc(), ServiceType.id), limit, offset)

    async def key_taken(self, key: str) -> bool:
        return await self.exists(ServiceType.key == key)


class ServicePlanRepository(Repository[ServicePlan]):
    model = ServicePlan

    async def newest_first(self, limit: int | None, offset: int | None,
                           service_type_id: uuid.UUID | None = None) -> list[ServicePlan]:
        """The service type filter applies before paging."""
        statement = self.statement()
        if service_type_id is not None:
            statement = statement.where(ServicePlan.service_type_id == service_type_id)
        return await self.page(statement.order_by(ServicePlan.created_at.desc(), ServicePlan.id), limit, offset)

    async def active_with_type(self, service_type_id: uuid.UUID | None = None, *, limit: int | None = None,
                               offset: int | None = None) -> list[tuple[ServicePlan, ServiceType]]:
        """(plan, its service type) of the active plans, newest first."""
        statement = (self.statement(ServicePlan, ServiceType)
                     .join(ServiceType, ServiceType.id == ServicePlan.service_type_id)
                     .where(ServicePlan.is_active.is_(True)))
        if service_type_id is not None:
            statement = statement.where(ServicePlan.service_type_id == service_type_id)
        statement = statement.order_by(ServicePlan.created_at.desc(), ServicePlan.id)
        if limit is not None or offset is not None:
            statement = page(statement, limit, offset)
        return [(plan, service_type) for plan, service_type in await self.rows(statement)]


class AvailabilitySnapshotRepository(Repository[AvailabilitySnapshot]):
    model = AvailabilitySnapshot

    def record(self, **fields: Any) -> AvailabilitySnapshot:
        return self.add(AvailabilitySnapshot(**fields))
