"""Building async engines from database URLs (SQLite via aiosqlite, PostgreSQL via asyncpg)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import event, exc
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


def _ping(dbapi_connection: Any, connection_record: Any, proxy: Any) -> None:
    """Check a pooled PostgreSQL connection at checkout with one ``SELECT 1``.

    SQLAlchemy's ``pool_pre_ping`` does the same job, but its asyncpg ping is three round
    trips (BEGIN, an empty query, ROLLBACK, for pgbouncer's transaction mode), which made
    pings about half of a busy bot's round trips to the database. A failed ping invalidates
    the whole pool, as pre-ping does (a server restart killed them all), and SQLAlchemy
    retries the checkout with a new connection, so a restart costs no unit of work.
    """
    try:
        dbapi_connection.run_async(lambda driver: driver.execute("SELECT 1"))
    except Exception as error:
        raise exc.InvalidatePoolError(str(error)) from error


def make_engine(
    database_url: str,
    *,
    connect_args: Mapping[str, Any] | None = None,
    echo: bool = False,
    pool_size: int | None = None,
    max_overflow: int | None = None,
) -> AsyncEngine:
    """An async engine for ``database_url``.

    SQLite gets a 30 s busy timeout and enforced foreign keys; PostgreSQL gets a one-round-trip
    ping at checkout so a long-running bot survives server restarts (:func:`_ping`), and a
    pool of ``pool_size`` connections
    plus up to ``max_overflow`` more (None: SQLAlchemy's 5 and 10). ``connect_args`` go to
    the driver (e.g. ``{"server_settings": {"search_path": "myschema"}}`` for asyncpg).
    """
    url = normalize_url(database_url)
    args: dict[str, Any] = {}
    is_sqlite = make_url(url).get_backend_name() == "sqlite"
    if is_sqlite:
        args["timeout"] = SQLITE_TIMEOUT_S
    args.update(connect_args or {})
    pool: dict[str, int] = {}
    if not is_sqlite:  # SQLite: one file, one writer; SQLAlchemy picks its pool
        if pool_size is not None:
            pool["pool_size"] = pool_size
        if max_overflow is not None:
            pool["max_overflow"] = max_overflow
    engine = create_async_engine(url, connect_args=args, echo=echo, **pool)
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", _enable_sqlite_foreign_keys)
    else:
        event.listen(engine.sync_engine.pool, "checkout", _ping)
    return engine
