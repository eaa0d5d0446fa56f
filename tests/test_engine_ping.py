"""PostgreSQL connections are pinged at checkout in one round trip, and a dead one is
replaced before the unit of work sees it."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from storage import make_engine, normalize_url

PG_URL = os.environ.get("TEST_DATABASE_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL is not set")
BACKEND_PID = sa.text("SELECT pg_backend_pid()")


async def _terminate(pid: int) -> None:
    admin = create_async_engine(normalize_url(PG_URL or ""), poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f"SELECT pg_terminate_backend({pid})"))
    finally:
        await admin.dispose()


async def _pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(BACKEND_PID))


async def test_a_pooled_connection_that_died_is_replaced_before_use() -> None:
    engine = make_engine(PG_URL or "", pool_size=1, max_overflow=0)
    try:
        dead = await _pid(engine)
        await _terminate(dead)

        assert await _pid(engine) != dead  # no error reached the caller
    finally:
        await engine.dispose()


async def test_the_ping_is_one_round_trip_outside_any_transaction() -> None:
    """What the checkout sends: SELECT 1 alone, no BEGIN/ROLLBACK around it."""
    engine = make_engine(PG_URL or "", pool_size=1, max_overflow=0)
    sent: list[str] = []
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            driver.add_query_logger(lambda record: sent.append(record.query))
        sent.clear()
        await _pid(engine)
        assert sent[0] == "SELECT 1"  # first, not inside a BEGIN ...
        assert not sent[1].upper().startswith("ROLLBACK")  # ... nor followed by a ROLLBACK
    finally:
        await engine.dispose()
