"""What every use case works with: the unit of work, the model, the clock, the platforms."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from core.clock import Clock
from core.errors import Conflict, NotFound, Stale
from core.jobs import JobRunner
from core.models import AuditEvent, Interview
from core.ports import (
    ChatModel,
    Metrics,
    NoMetrics,
    Platform,
    RateLimiter,
    UnitOfWork,
    UnitOfWorkFactory,
)

log = logging.getLogger(__name__)

SAVE_ATTEMPTS = 8

# Rewrites a fresh copy of an interview; returns the audit events to store with it, or None
# when there is nothing to save. May write more through the unit of work (e.g. jobs). It
# runs again on a fresh copy when another process saved first, so it must be repeatable.
Change = Callable[[UnitOfWork, Interview], Awaitable[list[AuditEvent] | None]]


@dataclass(frozen=True)
class EngineConfig:
    """Defaults and amounts the engine applies."""

    model: str = "gpt-4o-mini"
    time_limit_s: int = 45 * 60
    token_budget: int = 20_000
    challenge_slug: str = "two-sum"
    temperature: float | None = None
    extend_time_s: int = 10 * 60  # the "+10 min" button
    extend_tokens: int = 5000  # the "+5k tokens" button
    lease_s: float = 30.0  # a turn's hold on its interview, renewed while it streams
    timezone: str = "UTC"  # the team time zone unless the workspace sets its own
    reminders_s: tuple[int, ...] = (24 * 3600, 3600, 300)
    schedule_grace_s: int = 600  # missed work runs late within this, else is dropped/missed
    weekly_summary: str | None = "fri 17:00"  # None: off
    team_channels: dict[str, str] = field(default_factory=dict)  # per platform (env)
    interviewer_channels: dict[str, str] = field(default_factory=dict)  # per platform (env)
    evaluation: bool = True  # EVALUATION=off: reports carry the metrics only
    evaluation_model: str | None = None  # None: ``model``
    max_message_chars: int = 8000  # a longer candidate message is refused, nothing charged
    candidate_messages_per_minute: int = 20  # per interview, across processes; 0: no limit
    workspace_llm_calls_per_minute: int = 300  # per workspace, across processes; 0: no limit
    retention_days: int | None = None  # RETENTION_DAYS: purge older interviews; None: keep


@dataclass
class Context:
    uow: UnitOfWorkFactory
    model: ChatModel
    clock: Clock
    platforms: dict[str, Platform]
    config: EngineConfig
    jobs: JobRunner
    metrics: Metrics = field(default_factory=NoMetrics)
    # Shared by every process (the database in the bot): the per-candidate and per-workspace
    # rate limits. None: no rate limits (the console, most tests).
    limiter: RateLimiter | None = None

    def platform(self, interview: Interview) -> Platform:
        try:
            return self.platforms[interview.platform]
        except KeyError:
            raise NotFound(f"No adapter for platform {interview.platform!r} is running.") from None

    def event(
        self, interview: Interview, actor_id: str | None, kind: str, **detail: Any
    ) -> AuditEvent:
        return AuditEvent(
            interview_id=interview.id,
            actor_id=actor_id or "system",
            kind=kind,
            at=self.clock.now(),
            detail=detail,
        )

    async def load(self, interview_id: str) -> Interview:
        async with self.uow() as uow:
            interview = await uow.interviews.get(interview_id)
        if interview is None:
            raise NotFound("That interview does not exist.")
        return interview

    async def save(self, interview_id: str, change: Change) -> tuple[Interview, bool]:
        """Apply ``change`` to the stored interview and save it, again on a fresh copy if
        another process saved first. Returns the interview and whether it changed."""
        for _ in range(SAVE_ATTEMPTS):
            async with self.uow() as uow:
                interview = await uow.interviews.get(interview_id)
                if interview is None:
                    raise NotFound("That interview does not exist.")
                events = await change(uow, interview)
                if events is None:
                    return interview, False
                try:
                    await uow.interviews.update(interview, *events)
                except Stale:
                    continue
                await uow.commit()
                return interview, True
        raise Conflict("The interview is changing too fast right now; please try again.")

    async def notice(self, interview: Interview, text: str) -> None:
        try:
            await self.platform(interview).post_notice(interview, text)
        except Exception:
            log.exception("could not post a notice in interview %s", interview.id)
