"""SQLModel tables, one module per domain. Importing this package registers every table on
`SQLModel.metadata` (Alembic's autogenerate and the test schema use it)."""

from models.identity import User  # noqa: F401
from models.catalog import AvailabilitySnapshot, ServicePlan, ServiceType  # noqa: F401
