"""DATABASE_POOL_SIZE and DATABASE_MAX_OVERFLOW size each process's PostgreSQL pool."""

from __future__ import annotations

import pytest
from sqlalchemy.pool import QueuePool

from bot.database import wait_for_database
from bot.settings import load_settings
from tests.conftest import PG_URL


async def test_the_pool_settings_reach_the_engine() -> None:
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    settings = load_settings(database_url=PG_URL, database_pool_size=3, database_max_overflow=2)
    database = await wait_for_database(
        settings.database_url,
        attempts=1,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    try:
        pool = database.engine.pool
        assert isinstance(pool, QueuePool)
        assert (pool.size(), pool._max_overflow) == (3, 2)
    finally:
        await database.close()


def test_the_default_pool_holds_what_one_process_streams_at_once() -> None:
    """20 kept open (a turn is ~14 short units of work; overflow connections are closed on
    return and reopened at the next peak), 10 more at peaks: 2 replicas plus one starting
    during a rolling restart fit PostgreSQL's default 100 connections with overflow 5."""
    settings = load_settings()
    assert (settings.database_pool_size, settings.database_max_overflow) == (20, 10)
