"""The engine, assembled: one object per use case group over a shared context.

``service.lifecycle`` (start, extend, pause, resume, end, control), ``service.turns``
(candidate messages), ``service.queries`` (what adapters read), ``service.upkeep``
(warnings, counters, the ticks), ``service.programs`` (weekly schedules and reminders),
``service.summaries`` (the weekly summary), ``service.reports`` (evaluation reports),
``service.retention`` (the daily purge of ``RETENTION_DAYS``) and
``service.jobs`` (the durable job runner).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Mapping

from core.clock import Clock
from core.context import Context, EngineConfig
from core.jobs import ClockAlarm, JobRunner
from core.lifecycle import Lifecycle
from core.models import EndReason, Status
from core.ports import (
    Alarm,
    ChartRenderer,
    ChatModel,
    Judge,
    Metrics,
    NoMetrics,
    Platform,
    RateLimiter,
    UnitOfWorkFactory,
)
from core.programs import Programs
from core.queries import Queries
from core.reports import Reports
from core.retention import Retention
from core.summary import Summaries
from core.turns import Turns
from core.upkeep import Upkeep

__all__ = ["EngineConfig", "InterviewService"]


def process_name() -> str:
    """Who holds a claim or a lease: host, process id and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class InterviewService:
    """Starts, runs and ends interviews; enforces the time and token budgets."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        model: ChatModel,
        clock: Clock,
        platforms: Mapping[str, Platform],
        config: EngineConfig | None = None,
        *,
        metrics: Metrics | None = None,
        alarm: Alarm | None = None,
        owner: str | None = None,
        judge: Judge | None = None,
        render_chart: ChartRenderer | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._clock_alarm = None if alarm is not None else ClockAlarm(clock, self._run_due)
        metrics = metrics or NoMetrics()
        self.jobs = JobRunner(
            uow, clock, owner or process_name(), alarm or self._clock_alarm, metrics=metrics
        )
        self.ctx = Context(
            uow,
            model,
            clock,
            dict(platforms),
            config or EngineConfig(),
            self.jobs,
            metrics,
            limiter=limiter,
        )
        self.upkeep = Upkeep(self.ctx)
        self.lifecycle = Lifecycle(self.ctx, self.upkeep)
        self.turns = Turns(self.ctx, self.upkeep)
        self.queries = Queries(self.ctx, self.upkeep)
        self.programs = Programs(self.ctx, self.lifecycle)
        self.summaries = Summaries(self.ctx)
        self.retention = Retention(self.ctx)
        self.reports = Reports(self.ctx, judge, render_chart)

    @property
    def platforms(self) -> dict[str, Platform]:
        return self.ctx.platforms

    @property
    def config(self) -> EngineConfig:
        return self.ctx.config

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def model(self) -> ChatModel:
        return self.ctx.model

    async def _run_due(self) -> None:
        await self.jobs.run_due()

    async def recover(self) -> None:
        """After a start: close what ran out meanwhile, arm every running interview's tick,
        and take over turns left open by a process that died."""
        await self.jobs.run_due()
        now = self.ctx.clock.now()
        for interview in await self.queries.open_interviews():
            if interview.status is Status.ACTIVE and interview.seconds_left(now) <= 0:
                await self.upkeep.finish(interview.id, EndReason.TIME_UP, "system")
            else:
                await self.upkeep.arm(interview)
        await self.turns.sweep()
        await self.turns.settle()
        await self.summaries.arm_all()
        await self.retention.arm()

    async def sweep(self) -> None:
        """Run due jobs and take over orphaned turns (called periodically)."""
        await self.jobs.run_due()
        await self.turns.sweep()

    async def settle(self) -> None:
        """Wait until due jobs and background work are done (tests)."""
        for _ in range(50):
            await asyncio.sleep(0)
            if self._clock_alarm is not None:
                await self._clock_alarm.settle()
            await self.jobs.settle()
            await self.turns.settle()
            if not self.jobs.busy and not self.turns.busy:
                await asyncio.sleep(0)
                if not self.jobs.busy and not self.turns.busy:
                    return

    async def close(self) -> None:
        if self._clock_alarm is not None:
            await self._clock_alarm.close()
        await self.turns.close()
        await self.jobs.close()
