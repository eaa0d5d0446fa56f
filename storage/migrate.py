"""Run the Alembic migrations programmatically (the bot does this on start-up)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import make_engine

log = logging.getLogger(__name__)

_HERE = Path(__file__).resolve().parent
ALEMBIC_INI = _HERE / "alembic.ini"
SCRIPT_LOCATION = _HERE / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for this package's migrations, optionally bound to a connection."""
    config = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.is_file() else Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision shipped with the code."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _run_upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade_engine(engine: AsyncEngine) -> None:
    """Bring the database behind ``engine`` up to the latest revision (idempotent)."""
    async with engine.begin() as connection:
        before = await connection.run_sync(_current_revision)
        await connection.run_sync(_run_upgrade)
        after = await connection.run_sync(_current_revision)
    if before != after:
        log.info("database schema upgraded from %s to %s", before or "nothing", after)


async def upgrade(database_url: str, *, connect_args: Mapping[str, Any] | None = None) -> None:
    """Bring the database at ``database_url`` up to the latest revision (idempotent).

    ``connect_args`` go to the driver, as for :func:`storage.engine.make_engine`.
    """
    engine = make_engine(database_url, connect_args=connect_args)
    try:
        await upgrade_engine(engine)
    finally:
        await engine.dispose()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current_revision)
