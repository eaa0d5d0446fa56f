"""The job runner arms its alarm for the next job before running a batch, so a job due while
a slow batch runs is not held up by it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from core.clock import ManualClock
from core.jobs import JobRunner
from core.models import Job
from scheduler.alarm import SchedulerAlarm
from tests.fakes.memory_uow import MemoryUnitOfWorkFactory


async def no_sweep() -> None:
    """The alarm's periodic sweep, with nothing to sweep here."""


class RecordingAlarm:
    def __init__(self) -> None:
        self.wake_ups: list[datetime] = []

    def wake_at(self, when: datetime) -> None:
        self.wake_ups.append(when)


async def test_the_next_job_is_armed_while_a_slow_batch_still_runs() -> None:
    uow = MemoryUnitOfWorkFactory()
    clock = ManualClock()
    alarm = RecordingAlarm()
    runner = JobRunner(uow, clock, "me", alarm)
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(job: Job) -> None:
        started.set()
        await release.wait()

    runner.on("slow", slow)
    now = clock.now()
    soon = now + timedelta(seconds=2)
    async with uow() as work:
        await work.jobs.schedule(Job("slow", "slow:1", now, {}))
        await work.jobs.schedule(Job("slow", "slow:2", soon, {}))
        await work.commit()

    batch = asyncio.create_task(runner.run_due())
    await started.wait()
    assert alarm.wake_ups == [soon]  # armed before the batch ended
    release.set()
    assert await batch == 1


async def test_a_wake_up_armed_during_a_ring_rings_at_once() -> None:
    """APScheduler skips a job whose allowed instances are all running; the alarm allows a
    few, so the runner's early re-arm is not lost while its batch still runs."""
    rings = 0
    first_running = asyncio.Event()
    second_rang = asyncio.Event()

    async def wake() -> None:
        nonlocal rings
        rings += 1
        if rings == 1:
            first_running.set()
            await second_rang.wait()  # still running when the next ring comes
        else:
            second_rang.set()

    alarm = SchedulerAlarm(wake, no_sweep, sweep_s=3600)
    alarm.start()
    try:
        alarm.wake_at(datetime.now(UTC))
        await asyncio.wait_for(first_running.wait(), 5)
        alarm.wake_at(datetime.now(UTC))
        await asyncio.wait_for(second_rang.wait(), 5)
        assert rings == 2
    finally:
        await alarm.stop()


async def test_the_alarm_keeps_the_distance_on_the_injected_clock() -> None:
    """Due times are on the injected clock, however far it is from the wall clock: a job due
    in an hour on a clock set years back waits (it once rang at once, and the runner, finding
    nothing due, re-armed it in a busy loop); one due now on that clock rings now."""
    rang = asyncio.Event()

    async def wake() -> None:
        rang.set()

    clock = ManualClock(datetime(2020, 1, 3, 13, 0, tzinfo=UTC))
    alarm = SchedulerAlarm(wake, no_sweep, sweep_s=3600, clock=clock)
    alarm.start()
    try:
        alarm.wake_at(clock.now() + timedelta(hours=1))
        await asyncio.sleep(0.3)
        assert not rang.is_set()
        alarm.wake_at(clock.now())
        await asyncio.wait_for(rang.wait(), 5)
    finally:
        await alarm.stop()
