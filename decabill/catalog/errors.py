"""Errors of the catalog (messages from behavior.md part A §4)."""

from __future__ import annotations

import uuid

from decabill.errors import BadRequest, Conflict, NotFound


class ServiceTypeNotFound(NotFound):
    def __init__(self, service_type_id: uuid.UUID | str) -> None:
        super().__init__(f"Service type with ID {service_type_id} not found")


class ServicePlanNotFound(NotFound):
    def __init__(self, plan_id: uuid.UUID | str) -> None:
        super().__init__(f"Service plan with ID {plan_id} not found")


class NoPublicOfferings(NotFound):
    def __init__(self) -> None:
        super().__init__("No active service plan offerings")


class DuplicateServiceTypeKey(Conflict):
    def __init__(self, key: str) -> None:
        super().__init__(f"A service type with key '{key}' already exists")


class LocationSelectionNotSupported(BadRequest):
    def __init__(self) -> None:
        super().__init__(
            "allowCustomerLocationSelection requires region or location with a string enum on the service type "
            "config schema or on the provider registered for this service type"
        )


class PlanNotPriceable(BadRequest):
    """A plan that would be sold at zero: refused everywhere rather than priced at 0."""

    def __init__(self, plan_name: str, why: str) -> None:
        super().__init__(f"Service plan '{plan_name}' cannot be priced: {why}")
