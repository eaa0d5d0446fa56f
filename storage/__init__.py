"""SQL persistence (SQLite or PostgreSQL) behind the unit-of-work port of :mod:`core.ports`.

Typical start-up::

    from storage import create_uow_factory, upgrade

    await upgrade(database_url)                 # Alembic migrations, idempotent
    uow = create_uow_factory(database_url)      # units of work on a new async engine
    async with uow() as work:
        ...
        await work.commit()
    await uow.close()
"""

from collections.abc import Mapping
from typing import Any

from storage.engine import make_engine, normalize_url
from storage.migrate import upgrade, upgrade_engine
from storage.rate_limits import SqlRateLimiter
from storage.uow import SqlUnitOfWork, UnitOfWorkFactory


def create_uow_factory(
    database_url: str,
    *,
    connect_args: Mapping[str, Any] | None = None,
    echo: bool = False,
    pool_size: int | None = None,
    max_overflow: int | None = None,
) -> UnitOfWorkFactory:
    """Units of work on a new engine for ``database_url`` (the schema must exist already)."""
    engine = make_engine(
        database_url,
        connect_args=connect_args,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
    )
    return UnitOfWorkFactory(engine)


__all__ = [
    "SqlRateLimiter",
    "SqlUnitOfWork",
    "UnitOfWorkFactory",
    "create_uow_factory",
    "make_engine",
    "normalize_url",
    "upgrade",
    "upgrade_engine",
]
