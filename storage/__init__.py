"""SQL persistence (SQLite or PostgreSQL) behind :class:`core.ports.InterviewStore`.

Typical start-up::

    from storage import create_store, upgrade

    await upgrade(database_url)          # Alembic migrations, idempotent
    store = create_store(database_url)   # SqlStore on a new async engine
    ...
    await store.close()
"""

from storage.engine import make_engine, normalize_url
from storage.migrate import upgrade, upgrade_engine
from storage.sql_store import SqlStore, create_store

__all__ = [
    "SqlStore",
    "create_store",
    "make_engine",
    "normalize_url",
    "upgrade",
    "upgrade_engine",
]
