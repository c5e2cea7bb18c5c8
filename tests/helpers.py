"""Assertions shared by the HTTP tests."""

from __future__ import annotations

import asyncio

ERROR_KEYS = {"statusCode", "message", "error"}


def assert_error(response, status: int, message: str | None = None) -> dict:
    """The contract's ErrorResponse: exact keys, JSON content type, the given status (and message)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["statusCode"] == status
    assert isinstance(body["message"], str)
    if message is not None:
        assert body["message"] == message, body
    return body


async def drain(broker=None) -> None:
    """Wait until the in-process broker (default: the current configuration's) has run everything, including the
    units that units sent."""
    from decabill.jobs import queue

    broker = broker or queue.get_broker()
    for _ in range(50):
        # A finished task leaves `_running_tasks` in a done callback that runs on the loop's next turn; awaiting
        # an already finished task does not yield, so without this the loop could spin on it 50 times.
        await asyncio.sleep(0)
        if all(task.done() for task in broker._running_tasks):
            return
        await broker.wait_all()
    raise AssertionError("jobs kept running")


async def rows(model, *where, tenant: str | None = None, order_by: tuple = ()) -> list:
    """The rows of a table as `tenant` (default: the bound one) sees them, oldest first when the table has `created_at`,
    rows of the same time (a frozen test clock, one change's entries) then in primary-key order: PostgreSQL returns
    unordered rows, and rows of equal sort keys, in whatever order the heap holds them, and the tests empty tables
    with DELETE, so freed slots are reused. Audit entries' ids increase in write order (`states.ordered_id`), so
    theirs come in write order; other tables' uuid4 ids give an order that is stable but not the writing order:
    a test that needs one sorts by what it means (a level, a period), or passes `order_by` (the primary key still
    breaks ties)."""
    from sqlmodel import select

    from decabill import db
    from decabill.tenancy import bound_tenant, current_tenant

    table = model.__table__
    keys = list(order_by) or ([table.c.created_at] if "created_at" in table.columns else [])
    statement = select(model).where(*where).order_by(*keys, *table.primary_key.columns)
    with bound_tenant(tenant or current_tenant()):
        async with db.transaction() as session:
            return list((await session.execute(statement)).scalars())
