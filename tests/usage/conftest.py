"""The usage tests share the invoicing tests' fixtures (seller configured, admin, customer, a manual plan, clock)."""

from tests.invoicing.conftest import admin, billing_api, clock, customer, plan  # noqa: F401
