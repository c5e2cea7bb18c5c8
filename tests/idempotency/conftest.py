"""The ordering fixtures (cloud fakes, admin, customer) for the idempotency tests."""

from tests.subscriptions.conftest import admin, cloud, customer  # noqa: F401
