"""Opening the database at start-up: migrations, retries while it warms up, one-line failures."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from core.errors import StartupError
from storage import UnitOfWorkFactory, create_uow_factory
from storage.migrate import upgrade

log = logging.getLogger(__name__)


def shown_url(database_url: str) -> str:
    """The URL with its password masked, fit for a log line."""
    return make_url(database_url).render_as_string(hide_password=True)


def _reason(exc: BaseException) -> str:
    """The driver's own message, first line only (SQLAlchemy adds a background link)."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(cause).strip().splitlines()
    return text[0] if text and text[0] else type(cause).__name__


def _check_sqlite_folder(database_url: str) -> None:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    folder = Path(url.database).expanduser().resolve().parent
    if not folder.is_dir():
        raise StartupError(
            f"the folder {folder} for the SQLite database does not exist (DATABASE_URL="
            f"{shown_url(database_url)}): create it or point DATABASE_URL elsewhere"
        )


async def open_database(
    database_url: str, *, pool_size: int | None = None, max_overflow: int | None = None
) -> UnitOfWorkFactory:
    """Apply migrations, then connect (PostgreSQL: a pool of ``pool_size`` connections plus
    ``max_overflow``). Raises :class:`StartupError` with one clear line."""
    _check_sqlite_folder(database_url)
    try:
        await upgrade(database_url)
    except (OSError, SQLAlchemyError) as exc:
        raise StartupError(
            f"could not open the database at {shown_url(database_url)} (DATABASE_URL): "
            f"{_reason(exc)}"
        ) from exc
    return create_uow_factory(database_url, pool_size=pool_size, max_overflow=max_overflow)


def _unreachable(exc: BaseException) -> bool:
    """Connection refused, DNS, timeouts: worth retrying while the database starts."""
    if isinstance(exc, StartupError):
        exc = exc.__cause__ or exc
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return isinstance(exc, OSError | TimeoutError)


async def wait_for_database(
    database_url: str,
    attempts: int = 30,
    *,
    pool_size: int | None = None,
    max_overflow: int | None = None,
) -> UnitOfWorkFactory:
    """Open the store, retrying with backoff (about 4 minutes) while the database is unreachable.

    Cancelling (a signal) stops the wait at once.
    """
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, max=10),
        retry=retry_if_exception(_unreachable),
        before_sleep=lambda state: log.warning(
            "database not reachable yet (attempt %d of %d): %s",
            state.attempt_number,
            attempts,
            state.outcome.exception() if state.outcome else "",
        ),
        reraise=True,
    ):
        with attempt:
            return await open_database(database_url, pool_size=pool_size, max_overflow=max_overflow)
    raise AssertionError("unreachable")
