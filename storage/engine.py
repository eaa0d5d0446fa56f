"""Building async engines from database URLs (SQLite via aiosqlite, PostgreSQL via asyncpg)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
}

SQLITE_TIMEOUT_S = 30


def normalize_url(database_url: str) -> str:
    """Give a bare ``sqlite://`` or ``postgres(ql)://`` URL its async driver.

    URLs that already name a driver are returned unchanged.
    """
    url = make_url(database_url)
    driver = _ASYNC_DRIVERS.get(url.drivername)
    if driver is None:
        return database_url
    return url.set(drivername=driver).render_as_string(hide_password=False)


def _enable_sqlite_foreign_keys(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(
    database_url: str, *, connect_args: Mapping[str, Any] | None = None, echo: bool = False
) -> AsyncEngine:
    """An async engine for ``database_url``.

    SQLite gets a 30 s busy timeout and enforced foreign keys; PostgreSQL gets pre-ping so
    a long-running bot survives server restarts. ``connect_args`` go to the driver (e.g.
    ``{"server_settings": {"search_path": "myschema"}}`` for asyncpg).
    """
    url = normalize_url(database_url)
    args: dict[str, Any] = {}
    is_sqlite = make_url(url).get_backend_name() == "sqlite"
    if is_sqlite:
        args["timeout"] = SQLITE_TIMEOUT_S
    args.update(connect_args or {})
    engine = create_async_engine(url, connect_args=args, echo=echo, pool_pre_ping=not is_sqlite)
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", _enable_sqlite_foreign_keys)
    return engine
