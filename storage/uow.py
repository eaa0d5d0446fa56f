"""The unit of work: one transaction per use case, with a repository per aggregate.

``async with uow: ...; await uow.commit()``; leaving without ``commit()`` rolls back. On
SQLite (one process, one writer) transactions of the process take turns through a lock, so
a read that later writes can never be refused with "database is locked"; nested units of
work in one task would deadlock and are refused.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.ports import (
    ChallengeRepository,
    InterviewRepository,
    JobRepository,
    LeaseRepository,
    PrivacyRepository,
    ProgramRepository,
    ReportRepository,
    WorkspaceRepository,
)
from storage.jobs import SqlJobs, SqlLeases
from storage.privacy import SqlPrivacy
from storage.repositories import (
    SqlChallenges,
    SqlInterviews,
    SqlPrograms,
    SqlReports,
    SqlWorkspaces,
)


class SqlUnitOfWork:
    """:class:`core.ports.UnitOfWork` over one ``AsyncConnection`` and its transaction.

    Core statements only (no ORM session): the repositories map rows to dataclasses
    themselves, and a connection skips the session's bookkeeping on every statement."""

    workspaces: WorkspaceRepository
    interviews: InterviewRepository
    challenges: ChallengeRepository
    jobs: JobRepository
    leases: LeaseRepository
    programs: ProgramRepository
    reports: ReportRepository
    privacy: PrivacyRepository
    sql_privacy: SqlPrivacy  # ``privacy`` with the per-person export and purge (the CLI)

    def __init__(self, engine: AsyncEngine, turnstile: _Turnstile | None = None) -> None:
        self._engine = engine
        self._turnstile = turnstile
        self._conn: AsyncConnection | None = None
        self._holding = False

    async def __aenter__(self) -> Self:
        if self._turnstile is not None:
            await self._turnstile.enter()
            self._holding = True
        try:
            self._conn = await self._engine.connect()
            await self._conn.begin()
        except BaseException:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
            self._release()
            raise
        session = self._conn
        self.workspaces = SqlWorkspaces(session)
        self.interviews = SqlInterviews(session)
        self.challenges = SqlChallenges(session)
        self.jobs = SqlJobs(session)
        self.leases = SqlLeases(session)
        self.programs = SqlPrograms(session)
        self.reports = SqlReports(session)
        self.privacy = self.sql_privacy = SqlPrivacy(session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._conn is not None:
                await self._conn.close()  # rolls back anything not committed
        finally:
            self._conn = None
            self._release()

    async def commit(self) -> None:
        assert self._conn is not None, "commit() outside `async with`"
        await self._conn.commit()

    def _release(self) -> None:
        if self._turnstile is not None and self._holding:
            self._holding = False
            self._turnstile.leave()


class _Turnstile:
    """SQLite's transactions of one process, one at a time (and never nested in one task)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[object] | None = None

    async def enter(self) -> None:
        me = asyncio.current_task()
        if self._lock.locked() and self._owner is me:
            raise RuntimeError("a unit of work is already open in this task")
        await self._lock.acquire()
        self._owner = me

    def leave(self) -> None:
        self._owner = None
        self._lock.release()


class UnitOfWorkFactory:
    """Makes units of work on one engine (``uow = factory()``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._turnstile = _Turnstile() if engine.dialect.name == "sqlite" else None

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, self._turnstile)

    async def ping(self, timeout_s: float = 5.0) -> bool:
        """True if the database answers ``SELECT 1`` within ``timeout_s`` (health check)."""
        try:
            async with asyncio.timeout(timeout_s), self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()
