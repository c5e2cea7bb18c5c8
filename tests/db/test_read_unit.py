"""`db.read()`, the hot reads' unit of work (a plain async context manager): what runs after it, what it joins, and
that its pooled connection goes back to the pool whether the read succeeds or fails. Real databases, both backends."""

from __future__ import annotations

import pytest

from decabill import db
from decabill.identity.repository import UserRepository


class ReadFailed(Exception):
    pass


def _checked_out() -> int | None:
    pool = db.get_engine().sync_engine.pool
    return pool.checkedout() if hasattr(pool, "checkedout") else None  # SQLite's file pool keeps no count


async def test_callbacks_registered_in_a_read_run_after_it_and_not_after_a_failed_one(database):
    ran: list[str] = []

    async def note(what: str) -> None:
        ran.append(what)

    async with db.read() as session:
        assert await UserRepository(session).count() == 0
        db.after_commit(lambda: note("after the read"))
        assert ran == []  # not before the unit ends
    assert ran == ["after the read"]
    assert not db.in_transaction()

    with pytest.raises(ReadFailed):
        async with db.read() as session:
            await UserRepository(session).count()
            db.after_commit(lambda: note("after the failed read"))
            raise ReadFailed()
    assert ran == ["after the read"]
    assert not db.in_transaction()
    assert _checked_out() in (0, None)


async def test_a_read_inside_a_read_or_a_transaction_joins_it(database):
    async with db.read() as outer:
        await UserRepository(outer).count()
        async with db.read() as inner:
            assert inner is outer
        async with db.transaction() as inner:
            assert inner is outer
    async with db.transaction() as outer:
        async with db.read() as inner:
            assert inner is outer
    assert not db.in_transaction()
    assert _checked_out() in (0, None)


async def test_a_read_that_fails_inside_a_transaction_leaves_the_transaction_to_decide(database):
    with pytest.raises(ReadFailed):
        async with db.transaction() as outer:
            with pytest.raises(ReadFailed):
                async with db.read() as inner:
                    assert inner is outer
                    raise ReadFailed()
            assert db.in_transaction()  # the joined read did not end the transaction
            raise ReadFailed()
    assert not db.in_transaction()
    assert _checked_out() in (0, None)
