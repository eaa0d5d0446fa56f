"""Durable jobs: due work claimed in the database, run by whichever process claims it.

A handler must be idempotent: a claim whose process died expires and the job is run again
by another process. Handlers may schedule their own key again (e.g. the next tick); the job
then stays armed for the new moment instead of being marked done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from core.clock import Clock
from core.models import Job
from core.ports import Alarm, Metrics, NoMetrics, UnitOfWorkFactory
from core.timers import Timers

log = logging.getLogger(__name__)

Handler = Callable[[Job], Awaitable[None]]

CLAIM_S = 60.0  # default: a job not finished by then is taken over (its process presumed dead)
BATCH = 20
MAX_BACKOFF_S = 300.0


class JobRunner:
    """Claims due jobs and runs their handlers; the alarm wakes it at the next due moment."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        owner: str,
        alarm: Alarm | None = None,
        *,
        claim_s: float = CLAIM_S,
        metrics: Metrics | None = None,
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.owner = owner
        self.alarm = alarm
        self.metrics = metrics or NoMetrics()  # told how late each job started (job lag)
        # How long a claim lasts (JOB_CLAIM_S): after a crash, the claimed jobs wait this long.
        self.claim_s = claim_s
        self.handlers: dict[str, Handler] = {}
        self.stopping = False  # shutting down: claim nothing more
        self._running: set[asyncio.Task[None]] = set()
        self._active: set[tuple[str, int]] = set()  # (key, revision) of the jobs running here
        self._idle = asyncio.Event()  # set while none is running
        self._idle.set()
        self._sweeps = 0  # run_due calls under way, whoever called (the alarm, a sweep)
        self._quiet = asyncio.Event()  # set while no call claims or runs anything here
        self._quiet.set()

    def on(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    async def schedule(self, job: Job) -> None:
        """Schedule in a unit of work of its own, and make sure the alarm knows."""
        async with self.uow() as uow:
            await uow.jobs.schedule(job)
            await uow.commit()
        self.armed(job.due_at)

    def armed(self, when: datetime) -> None:
        """A job is due at ``when``: have the alarm wake us then (call after commit)."""
        if self.alarm is not None:
            self.alarm.wake_at(when)

    async def run_due(self) -> int:
        """Claim and run every job due now; returns how many ran."""
        if self.stopping:
            return 0
        self._sweeps += 1
        self._quiet.clear()
        try:
            jobs = await self._claim(BATCH)
            if jobs:
                # The alarm first: a job due while this batch runs (a warning tick two
                # seconds away, behind a closing interview that waits for its final counter)
                # must not wait for the whole batch.
                await self._rearm()
                await asyncio.gather(*(self._run(job) for job in jobs))
            await self._rearm()
            return len(jobs)
        finally:
            self._sweeps -= 1
            if not self._sweeps:
                self._quiet.set()

    async def run_now(self, key: str) -> bool:
        """Run the job with this key now if it is due and nobody holds it (exactly once)."""
        if self.stopping:
            return False
        jobs = await self._claim(1, key)
        for job in jobs:
            await self._run(job)
        return bool(jobs)

    async def _claim(self, limit: int, key: str | None = None) -> list[Job]:
        now = self.clock.now()
        async with self.uow() as uow:
            jobs = await uow.jobs.claim_due(
                self.owner, now, now + timedelta(seconds=self.claim_s), limit, key=key
            )
            await uow.commit()
        # A job of ours that outlived its claim was claimed again: that renewed the claim,
        # and the run under way goes on (never two runs of one job in one process). A job
        # scheduled again meanwhile has a new revision: that one runs.
        return [job for job in jobs if (job.key, job.revision) not in self._active]

    async def _run(self, job: Job) -> None:
        running = (job.key, job.revision)
        self._active.add(running)
        self._idle.clear()
        lag = (self.clock.now() - job.due_at).total_seconds()
        self.metrics.job_started(job.kind, max(0.0, lag))
        try:
            await self._run_handler(job)
        finally:
            self._active.discard(running)
            if not self._active:
                self._idle.set()

    async def _run_handler(self, job: Job) -> None:
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for jobs of kind {job.kind!r}")
            await handler(job)
        except Exception as exc:
            delay = min(MAX_BACKOFF_S, 5.0 * 2 ** max(0, job.attempts - 1))
            log.exception(
                "job %s failed (attempt %d); retrying in %.0f s", job.key, job.attempts, delay
            )
            retry_at = self.clock.now() + timedelta(seconds=delay)
            async with self.uow() as uow:
                await uow.jobs.retry(job, retry_at, f"{type(exc).__name__}: {exc}")
                await uow.commit()
            return
        async with self.uow() as uow:
            await uow.jobs.finish(job, self.clock.now())
            await uow.commit()

    async def _rearm(self) -> None:
        if self.alarm is None:
            return
        async with self.uow() as uow:
            moment = await uow.jobs.next_due()
        if moment is not None:
            self.alarm.wake_at(moment)

    def wake(self) -> None:
        """Run due jobs soon, in the background."""

        async def run() -> None:
            await self.run_due()

        task = asyncio.create_task(run())
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    @property
    def busy(self) -> bool:
        return bool(self._running or self._sweeps)

    async def settle(self) -> None:
        """Wait for background runs and every ``run_due`` under way (the scheduler's rings
        included) to finish (tests)."""
        while self.busy:
            await asyncio.gather(*list(self._running), return_exceptions=True)
            await self._quiet.wait()

    async def stop(self, timeout_s: float) -> None:
        """Shutdown: claim nothing more, give the jobs under way ``timeout_s`` to finish,
        then cancel the background runs (a cancelled job keeps its claim until
        :meth:`release_all`)."""
        self.stopping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        await self.close()

    async def release_all(self) -> tuple[int, int]:
        """Shutdown: give up every job claim and lease this process holds, so that another
        process takes the work over at once instead of after the claim or lease expires.
        Returns (claims, leases) released."""
        async with self.uow() as uow:
            claims = await uow.jobs.release_claims(self.owner)
            leases = await uow.leases.release_all(self.owner)
            await uow.commit()
        return claims, leases

    async def close(self) -> None:
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)


class ClockAlarm:
    """:class:`core.ports.Alarm` on the injected clock (tests; any single process)."""

    def __init__(self, clock: Clock, wake: Callable[[], Awaitable[object]]) -> None:
        self._timers = Timers(clock)
        self._wake = wake
        self._when: datetime | None = None

    def wake_at(self, when: datetime) -> None:
        if self._when is not None and self._when <= when:
            return  # already waking earlier
        self._when = when

        async def ring() -> None:
            self._when = None
            await self._wake()

        self._timers.set("alarm", when, ring)

    async def settle(self) -> None:
        await self._timers.settle()

    async def close(self) -> None:
        await self._timers.close()
