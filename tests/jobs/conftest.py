"""The job tests reuse the ordering fixtures (fakes wired in, an admin, a customer with a complete profile)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from decabill import db
from decabill.jobs import queue
from tests.subscriptions.conftest import admin, cloud, customer  # noqa: F401 - fixtures


@pytest.fixture(autouse=True)
def fresh_broker():
    """Each test builds the broker of its own configuration."""
    queue.reset_broker()
    yield
    queue.reset_broker()


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def update_row(model, row_id: str | uuid.UUID, **values) -> None:
    async with db.transaction() as session:
        row = await session.get(model, uuid.UUID(str(row_id)))
        for name, value in values.items():
            setattr(row, name, value)


async def load_row(model, row_id: str | uuid.UUID):
    async with db.transaction() as session:
        return await session.get(model, uuid.UUID(str(row_id)))


async def positions_of(subscription_id: str | uuid.UUID) -> list:
    """The subscription's open positions (billed or not), earliest period first."""
    from models.subscriptions import OpenPosition
    from tests.helpers import rows

    return await rows(OpenPosition, OpenPosition.subscription_id == uuid.UUID(str(subscription_id)),
                      order_by=(OpenPosition.period_start,))
