"""APScheduler as the in-process alarm clock of the durable jobs.

The database is the source of truth: jobs live in the ``jobs`` table and are claimed there.
APScheduler only wakes this process: once at the next ``due_at`` it knows of (its own jobs),
and every ``sweep_s`` seconds to pick up jobs other processes created and turns whose
process died. Its own job store stays in memory (its SQLAlchemy store is synchronous and
must not be shared between processes).

Due times are on the injected clock; APScheduler runs on the wall clock, so a wake-up is
set at the same distance from the wall clock's now as ``due_at`` is from the clock's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.clock import Clock, SystemClock

log = logging.getLogger(__name__)

WAKE = "interview-buddy-wake"
SWEEP = "interview-buddy-sweep"


RINGS_AT_ONCE = 4


class SchedulerAlarm:
    """:class:`core.ports.Alarm` on an ``AsyncIOScheduler``."""

    def __init__(
        self,
        wake: Callable[[], Awaitable[object]],
        sweep: Callable[[], Awaitable[object]],
        *,
        sweep_s: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._wake = wake
        self._sweep = sweep
        self._sweep_s = sweep_s
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._next: datetime | None = None
        self._running: set[asyncio.Task[object]] = set()

    def start(self) -> None:
        # misfire_grace_time=None: a wake-up or sweep that comes late (a busy loop, a laptop
        # that slept) still runs, however late: the database decides what is due, and being
        # late must never mean skipping. coalesce=True: several missed runs are one run,
        # since one run claims everything that is due.
        self._scheduler.add_job(
            self._run_sweep,
            "interval",
            seconds=self._sweep_s,
            id=SWEEP,
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
        )
        self._scheduler.start()

    def wake_at(self, when: datetime) -> None:
        if self._next is not None and self._next <= when and self._scheduler.get_job(WAKE):
            return  # already waking earlier
        self._next = when
        self._scheduler.add_job(
            self._ring,
            "date",
            run_date=datetime.now(UTC) + (when - self._clock.now()),
            id=WAKE,
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
            # The runner arms the next wake-up while a batch still runs (a job due meanwhile
            # must not wait for the batch): that ring must run then, not be skipped as
            # APScheduler skips a job whose one allowed instance is still running.
            max_instances=RINGS_AT_ONCE,
        )

    async def _ring(self) -> None:
        self._next = None
        await self._tracked(self._wake)

    async def _run_sweep(self) -> None:
        await self._tracked(self._sweep)

    async def _tracked(self, work: Callable[[], Awaitable[object]]) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            await work()
        finally:
            self._running.discard(task)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """No new wake-ups; let the ones under way finish (a cancelled database call could
        leave its connection half-closed), then shut the scheduler down."""
        if not self._scheduler.running:
            return
        self._scheduler.pause()
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=timeout_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._scheduler.shutdown(wait=False)
