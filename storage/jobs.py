"""Durable jobs and leases: claims made in the database, so work happens once across processes.

A job is claimed with one ``UPDATE ... WHERE id IN (due, unclaimed or expired)`` (``FOR
UPDATE SKIP LOCKED`` on PostgreSQL, so two claimers never wait on or take the same rows); a
lease is taken with one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` it is free, expired
or already ours.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from core.models import Job
from storage.mapping import from_row, row_values
from storage.repositories import dialect_insert, param, per_dialect, upsert_insert
from storage.tables import UTCDateTime, jobs, leases


class SqlJobs:
    def __init__(self, session: AsyncConnection) -> None:
        self._s = session

    async def add_once(self, job: Job) -> bool:
        insert = upsert_insert(self._s, jobs).values(row_values(job, jobs))
        result = await self._s.execute(insert.on_conflict_do_nothing().returning(jobs.c.id))
        return result.scalar() is not None

    async def schedule(self, job: Job) -> None:
        insert = upsert_insert(self._s, jobs).values(row_values(job, jobs))
        await self._s.execute(
            insert.on_conflict_do_update(
                index_elements=[jobs.c.key],
                set_={
                    "kind": insert.excluded.kind,
                    "payload": insert.excluded.payload,
                    "due_at": insert.excluded.due_at,
                    "done_at": None,
                    "claimed_by": None,
                    "claimed_until": None,
                    "last_error": None,
                    "revision": jobs.c.revision + 1,
                },
            )
        )

    async def cancel(self, key: str, now: datetime) -> None:
        await self._s.execute(
            sa.update(jobs).where(jobs.c.key == key, jobs.c.done_at.is_(None)).values(done_at=now)
        )

    async def claim_due(
        self, owner: str, now: datetime, until: datetime, limit: int, key: str | None = None
    ) -> list[Job]:
        due = (
            sa.select(jobs.c.id)
            .where(
                jobs.c.done_at.is_(None),
                jobs.c.due_at <= now,
                sa.or_(jobs.c.claimed_until.is_(None), jobs.c.claimed_until < now),
            )
            .order_by(jobs.c.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if key is not None:
            due = due.where(jobs.c.key == key)
        result = await self._s.execute(
            sa.update(jobs)
            .where(jobs.c.id.in_(due.scalar_subquery()))
            .values(claimed_by=owner, claimed_until=until, attempts=jobs.c.attempts + 1)
            .returning(*jobs.c)
        )
        claimed = [from_row(Job, row) for row in result.mappings()]
        return sorted(claimed, key=lambda job: job.due_at)

    async def finish(self, job: Job, now: datetime) -> None:
        # Scheduled again while it ran (a new revision): stays armed for the new moment.
        await self._s.execute(
            sa.update(jobs)
            .where(jobs.c.id == job.id, jobs.c.revision == job.revision)
            .values(done_at=now, claimed_by=None, claimed_until=None)
        )

    async def retry(self, job: Job, due_at: datetime, error: str) -> None:
        await self._s.execute(
            sa.update(jobs)
            .where(jobs.c.id == job.id, jobs.c.revision == job.revision)
            .values(due_at=due_at, claimed_by=None, claimed_until=None, last_error=error[:2000])
        )

    async def release_claims(self, owner: str) -> int:
        result = await self._s.execute(
            sa.update(jobs)
            .where(jobs.c.claimed_by == owner, jobs.c.done_at.is_(None))
            .values(claimed_by=None, claimed_until=None)
        )
        return int(result.rowcount or 0)

    async def next_due(self) -> datetime | None:
        claimable = sa.case(
            (jobs.c.claimed_until > jobs.c.due_at, jobs.c.claimed_until), else_=jobs.c.due_at
        )
        query = sa.select(sa.func.min(claimable)).where(jobs.c.done_at.is_(None))
        moment = await self._s.scalar(query)
        return UTCDateTime().process_result_value(moment, self._s.dialect)

    async def get(self, key: str) -> Job | None:
        row = (await self._s.execute(sa.select(jobs).where(jobs.c.key == key))).mappings().first()
        return None if row is None else from_row(Job, row)


class SqlLeases:
    def __init__(self, session: AsyncConnection) -> None:
        self._s = session

    async def take(self, key: str, owner: str, now: datetime, until: datetime) -> bool:
        taken = _TAKE_LEASE[self._s.dialect.name]
        result = await self._s.execute(
            taken, {"p_key": key, "p_owner": owner, "p_until": until, "p_now": now}
        )
        return bool(result.scalar() == owner)

    async def release(self, key: str, owner: str) -> None:
        await self._s.execute(_RELEASE_LEASE, {"p_key": key, "p_owner": owner})

    async def release_all(self, owner: str) -> int:
        result = await self._s.execute(sa.delete(leases).where(leases.c.owner == owner))
        return int(result.rowcount or 0)

    async def holder(self, key: str, now: datetime) -> tuple[str, datetime] | None:
        row = (
            await self._s.execute(
                sa.select(leases.c.owner, leases.c.until).where(
                    leases.c.key == key, leases.c.until >= now
                )
            )
        ).first()
        return None if row is None else (str(row[0]), row[1])


def _take_lease_statement(dialect: str) -> sa.Insert:
    """The lease ``p_key`` for ``p_owner`` until ``p_until``, if free, expired (before
    ``p_now``) or the owner's already; returns the owner it then has (none: not taken)."""
    insert = dialect_insert(dialect, leases).values(
        key=param(leases.c.key), owner=param(leases.c.owner), until=param(leases.c.until)
    )
    return insert.on_conflict_do_update(
        index_elements=[leases.c.key],
        set_={"owner": insert.excluded.owner, "until": insert.excluded.until},
        where=sa.or_(
            leases.c.owner == param(leases.c.owner),
            leases.c.until < param(leases.c.until, "p_now"),
        ),
    ).returning(leases.c.owner)


# Built once (see storage/repositories.py): the turn path takes and releases a lease per turn.
_TAKE_LEASE = per_dialect(_take_lease_statement)
_RELEASE_LEASE = sa.delete(leases).where(
    leases.c.key == param(leases.c.key), leases.c.owner == param(leases.c.owner)
)
