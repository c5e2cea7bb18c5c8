"""Schema migrations (Alembic). `migrate(url)` upgrades a database to the newest revision; it is
used by `decabill serve`, `decabill migrate` and the test suite alike."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    return config


def _upgrade(url: str, revision: str) -> None:
    # The embedded default's folder is made at start-up (decabill.cli); any other SQLite path must exist.
    command.upgrade(alembic_config(url), revision)


async def migrate(url: str, revision: str = "head") -> None:
    # env.py runs its own event loop, so run Alembic in a worker thread.
    await asyncio.to_thread(_upgrade, url, revision)
