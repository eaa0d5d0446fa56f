"""Retention (``RETENTION_DAYS``): once a day, delete interviews that ended longer ago.

One durable job per UTC date (``retention:<YYYY-MM-DD>``, due at that midnight), added only
if absent: however many processes start or restart, each day's purge runs once. Start-up
adds today's (it runs at once unless it already ran today); each run adds the next day's.
The purge goes through the unit of work's ``privacy`` port (what ended before now minus N
days, with its turns, audit events, report, jobs and finished programs); open interviews
are never touched. A process without the setting neither purges nor arms the next day, so
turning it off stops the chain (set it the same on every process).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from core.context import Context
from core.models import Job
from core.ports import PurgeCounts

log = logging.getLogger(__name__)

RETENTION = "retention"


def retention_key(day: date) -> str:
    return f"retention:{day.isoformat()}"


class Retention:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        ctx.jobs.on(RETENTION, self._on_purge)

    async def arm(self, day: date | None = None) -> datetime | None:
        """Add the purge of ``day`` (default: today, UTC), once; None when retention is off."""
        if not self.ctx.config.retention_days:
            return None
        day = day or self.ctx.clock.now().astimezone(UTC).date()
        at = datetime.combine(day, time(), UTC)
        async with self.ctx.uow() as uow:
            await uow.jobs.add_once(Job(RETENTION, retention_key(day), at))
            await uow.commit()
        self.ctx.jobs.armed(at)
        return at

    async def purge(self) -> PurgeCounts | None:
        """Delete what ended more than ``retention_days`` ago (None when retention is off)."""
        days = self.ctx.config.retention_days
        if not days:
            return None
        cutoff = self.ctx.clock.now() - timedelta(days=days)
        async with self.ctx.uow() as uow:
            counts = await uow.privacy.purge_before(cutoff)
            await uow.commit()
        log.info(
            "retention (%d days): deleted %d interviews, %d turns, %d audit events, "
            "%d reports, %d programs, %d jobs that ended before %s",
            days,
            counts.interviews,
            counts.turns,
            counts.audit_events,
            counts.reports,
            counts.programs,
            counts.jobs,
            cutoff.isoformat(timespec="seconds"),
        )
        return counts

    async def _on_purge(self, job: Job) -> None:
        if await self.purge() is None:
            log.info("retention is off here: %s does nothing and arms no next day", job.key)
            return
        today = self.ctx.clock.now().astimezone(UTC).date()
        await self.arm(max(job.due_at.date(), today) + timedelta(days=1))
