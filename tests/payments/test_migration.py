"""Migration 0005 (payment attempts, webhook events) goes up and down on SQLite and PostgreSQL, and the
unique event key it creates is what makes a webhook delivery take effect once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import create_async_engine

from decabill.migrations import alembic_config, migrate
from tests.conftest import BACKENDS, _create_pg_database, _drop_pg_database

PAYMENT_TABLES = {"payment_attempts", "payment_webhook_events"}


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def _event_key_is_unique(url: str) -> None:
    engine = create_async_engine(url)
    row = {"tenant_id": "default", "processor": "stripe", "event_id": "evt_1", "event_type": "x", "payload_hash": "0" * 64,
           "result": "processed", "received_at": sa.func.now()}
    table = sa.table("payment_webhook_events", *(sa.column(c) for c in ("id", *row)))
    try:
        async with engine.begin() as conn:
            await conn.execute(table.insert().values(id=uuid.uuid4().hex if "sqlite" in url else uuid.uuid4(), **row))
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(table.insert().values(id=uuid.uuid4().hex if "sqlite" in url else uuid.uuid4(),
                                                         **row))
    finally:
        await engine.dispose()


async def _up_down_up(url: str) -> None:
    await migrate(url)
    assert PAYMENT_TABLES <= await _tables(url)
    await _event_key_is_unique(url)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0004")
    remaining = await _tables(url)
    assert not PAYMENT_TABLES & remaining and "invoices" in remaining
    await migrate(url)
    assert PAYMENT_TABLES <= await _tables(url)


@pytest.mark.skipif("sqlite" not in BACKENDS, reason="SQLite not in DECABILL_TEST_BACKENDS")
async def test_upgrade_and_downgrade_on_sqlite(tmp_path):
    await _up_down_up(f"sqlite+aiosqlite:///{tmp_path / 'migrations.sqlite3'}")


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL not in DECABILL_TEST_BACKENDS")
async def test_upgrade_and_downgrade_on_postgresql():
    name, url = await _create_pg_database()
    try:
        await _up_down_up(url)
    finally:
        await _drop_pg_database(name)
