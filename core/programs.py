"""Recurring interviews: weekly programs, their occurrences and reminders, exactly once.

Scheduling a program stores it with all its occurrences and, in the same transaction, one
durable job per occurrence and per (occurrence, reminder offset, recipient), each under a
unique key; offsets already past are not created. Handlers look at the program when they
run: a cancelled program or a skipped occurrence does nothing. Work that comes later than
``schedule_grace_s`` (the bot was down) is not done late: a reminder is dropped, an
occurrence is marked ``missed`` and the interviewer told, once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from core import texts
from core.calendar import MAX_WEEKS, first_day, weekly
from core.challenges import find_challenge
from core.context import Context
from core.errors import Conflict, DomainError, InvalidInput, NotFound
from core.lifecycle import Lifecycle, require_interviewer
from core.models import (
    Actor,
    Challenge,
    Job,
    Occurrence,
    OccurrenceStatus,
    Program,
    ProgramStatus,
    Workspace,
)
from core.parsing import MIN_TIME_LIMIT_SECONDS, MIN_TOKEN_BUDGET
from core.ports import ProgramRepository

log = logging.getLogger(__name__)

OCCURRENCE = "occurrence"
REMINDER = "reminder"
TEAM = "team"  # the recipient of the 24-hour note to the team channel
DAY = 24 * 3600
DEFAULT_WEEKDAY = 4  # Friday
DEFAULT_TIME = time(15, 0)
DEFAULT_WEEKS = 12


def team_zone(ctx: Context, workspace: Workspace) -> str:
    return str(workspace.settings.get("timezone") or ctx.config.timezone)


def team_channel(ctx: Context, workspace: Workspace) -> str | None:
    """Where team notes and summaries go: the team channel, else the interviewers'."""
    settings, config = workspace.settings, ctx.config
    return (
        settings.get("team_channel")
        or config.team_channels.get(workspace.platform)
        or interviewer_channel(ctx, workspace)
    )


def interviewer_channel(ctx: Context, workspace: Workspace) -> str | None:
    return workspace.settings.get("interviewer_channel") or ctx.config.interviewer_channels.get(
        workspace.platform
    )


@dataclass(frozen=True)
class ProgramView:
    """A program as ``/interview schedules`` lists it."""

    program: Program
    challenge: Challenge
    next_at: datetime | None
    remaining: int


class Programs:
    def __init__(self, ctx: Context, lifecycle: Lifecycle) -> None:
        self.ctx = ctx
        self.lifecycle = lifecycle
        ctx.jobs.on(OCCURRENCE, self._on_occurrence)
        ctx.jobs.on(REMINDER, self._on_reminder)

    # ------------------------------------------------------------------ interviewer commands

    async def schedule(
        self,
        workspace: Workspace,
        actor: Actor,
        candidate_id: str,
        *,
        weekday: int | None = None,
        clock: time | None = None,
        weeks: int | None = None,
        reminders_s: tuple[int, ...] | None = None,
        time_limit_s: int | None = None,
        token_budget: int | None = None,
        challenge_slug: str | None = None,
        platform_data: dict[str, Any] | None = None,
    ) -> tuple[Program, list[Occurrence]]:
        """A weekly program: by default every Friday at 15:00 team time, 12 times, with the
        reminders of ``REMINDERS`` (``reminders_s``: this program's own, ``()`` for none)."""
        ctx, config = self.ctx, self.ctx.config
        require_interviewer(actor)
        if candidate_id == actor.user_id:
            raise InvalidInput(texts.NOT_YOURSELF)
        if token_budget is not None and token_budget < MIN_TOKEN_BUDGET:
            raise InvalidInput(texts.too_small_budget(token_budget, MIN_TOKEN_BUDGET))
        if time_limit_s is not None and time_limit_s < MIN_TIME_LIMIT_SECONDS:
            raise InvalidInput(texts.AT_LEAST_A_MINUTE)
        if weeks is not None and not 1 <= weeks <= MAX_WEEKS:
            raise InvalidInput(f"A program has from 1 to {MAX_WEEKS} weekly occurrences.")
        zone = team_zone(ctx, workspace)
        weekday = DEFAULT_WEEKDAY if weekday is None else weekday
        clock = clock or DEFAULT_TIME
        now = ctx.clock.now()
        first = first_day(now, weekday, clock, zone)
        for _ in range(5):  # a short id taken in the workspace: draw another
            async with ctx.uow() as uow:
                challenge = await find_challenge(
                    uow.challenges, workspace.id, challenge_slug or config.challenge_slug
                )
                program = Program(
                    workspace_id=workspace.id,
                    platform=workspace.platform,
                    candidate_id=candidate_id,
                    interviewer_id=actor.user_id,
                    weekday=weekday,
                    local_time=clock.strftime("%H:%M"),
                    timezone=zone,
                    first_date=first,
                    count=weeks or DEFAULT_WEEKS,
                    challenge_slug=challenge.slug,
                    created_at=now,
                    time_limit_s=time_limit_s,
                    token_budget=token_budget,
                    reminders_s=list(config.reminders_s if reminders_s is None else reminders_s),
                    platform_data=dict(platform_data or {}),
                )
                moments = weekly(first, clock, zone, program.count)
                occurrences = [Occurrence(program.id, k, at) for k, at in enumerate(moments)]
                try:
                    await uow.programs.add(program, occurrences)
                except Conflict:
                    continue
                for job in self._jobs(program, occurrences, now):
                    await uow.jobs.add_once(job)
                await uow.commit()
            earliest = max(program.reminders_s, default=0)
            ctx.jobs.armed(max(now, moments[0] - timedelta(seconds=earliest)))
            return program, occurrences
        raise Conflict("Could not find a free program id; please try again.")

    def _jobs(self, program: Program, occurrences: list[Occurrence], now: datetime) -> list[Job]:
        jobs = []
        for occurrence in occurrences:
            payload = {"program_id": program.id, "index": occurrence.index}
            jobs.append(
                Job(
                    OCCURRENCE,
                    f"occurrence:{program.id}:{occurrence.index}",
                    occurrence.at,
                    payload,
                )
            )
            for offset in program.reminders_s:
                due = occurrence.at - timedelta(seconds=offset)
                if due <= now:
                    continue  # already past when the program was created
                recipients = [program.candidate_id, program.interviewer_id]
                if offset == DAY:
                    recipients.append(TEAM)
                for recipient in recipients:
                    key = f"reminder:{program.id}:{occurrence.index}:{offset}:{recipient}"
                    jobs.append(
                        Job(REMINDER, key, due, {**payload, "offset": offset, "to": recipient})
                    )
        return jobs

    async def list(self, workspace: Workspace, actor: Actor) -> list[ProgramView]:
        require_interviewer(actor)
        now = self.ctx.clock.now()
        views = []
        async with self.ctx.uow() as uow:
            for program in await uow.programs.list_active(workspace.id):
                ahead = [
                    o
                    for o in await uow.programs.occurrences(program.id)
                    if o.status is OccurrenceStatus.SCHEDULED and o.at > now
                ]
                if not ahead:
                    continue
                challenge = await find_challenge(
                    uow.challenges, workspace.id, program.challenge_slug
                )
                views.append(ProgramView(program, challenge, ahead[0].at, len(ahead)))
        return views

    async def unschedule(self, workspace: Workspace, actor: Actor, short_id: str) -> Program:
        require_interviewer(actor)
        async with self.ctx.uow() as uow:
            program = await self._find(uow.programs, workspace, short_id)
            program.status = ProgramStatus.CANCELLED
            await uow.programs.update(program)
            await uow.commit()
        return program

    async def skip(
        self, workspace: Workspace, actor: Actor, short_id: str
    ) -> tuple[Program, Occurrence]:
        """Skip the program's next occurrence (its reminders go with it)."""
        require_interviewer(actor)
        now = self.ctx.clock.now()
        async with self.ctx.uow() as uow:
            program = await self._find(uow.programs, workspace, short_id)
            ahead = [
                o
                for o in await uow.programs.occurrences(program.id)
                if o.status is OccurrenceStatus.SCHEDULED and o.at > now
            ]
            if not ahead:
                raise InvalidInput(texts.nothing_to_skip(program.short_id))
            ahead[0].status = OccurrenceStatus.SKIPPED
            await uow.programs.update_occurrence(ahead[0], was=OccurrenceStatus.SCHEDULED)
            await uow.commit()
        return program, ahead[0]

    async def _find(
        self, repository: ProgramRepository, workspace: Workspace, short_id: str
    ) -> Program:
        program = await repository.by_short_id(workspace.id, short_id.strip().lower())
        if program is None or program.status is not ProgramStatus.ACTIVE:
            raise NotFound(texts.no_program(short_id))
        return program

    # ------------------------------------------------------------------ jobs

    async def _load(self, job: Job) -> tuple[Program, Occurrence, Workspace] | None:
        """The program and occurrence a job is about, if it still stands."""
        async with self.ctx.uow() as uow:
            program = await uow.programs.get(str(job.payload["program_id"]))
            if program is None or program.status is not ProgramStatus.ACTIVE:
                return None
            index = int(job.payload["index"])
            occurrence = next(
                o for o in await uow.programs.occurrences(program.id) if o.index == index
            )
            workspace = await uow.workspaces.get(program.workspace_id)
        if occurrence.status is not OccurrenceStatus.SCHEDULED or workspace is None:
            return None
        return program, occurrence, workspace

    def _late(self, due: datetime) -> bool:
        return self.ctx.clock.now() - due > timedelta(seconds=self.ctx.config.schedule_grace_s)

    async def _on_reminder(self, job: Job) -> None:
        found = await self._load(job)
        if found is None:
            return
        program, occurrence, workspace = found
        if self._late(job.due_at) or self.ctx.clock.now() >= occurrence.at:
            # Stale after downtime, or its interview's moment has come: no point any more.
            log.info("reminder %s dropped: %s late", job.key, self.ctx.clock.now() - job.due_at)
            return
        platform = self.ctx.platforms[workspace.platform]
        async with self.ctx.uow() as uow:
            challenge = await find_challenge(uow.challenges, workspace.id, program.challenge_slug)
        minutes = program.time_limit_s or challenge.time_limit_s or self.ctx.config.time_limit_s
        when = platform.when(occurrence.at, program.timezone)
        offset, to = int(job.payload["offset"]), str(job.payload["to"])
        if to == TEAM:
            channel = team_channel(self.ctx, workspace)
            if channel:
                text = texts.team_note(
                    platform.mention, program.candidate_id, challenge.title, when
                )
                await platform.post_to_channel(workspace, channel, text)
            return
        text = texts.reminder(
            platform.mention,
            for_candidate=to == program.candidate_id,
            candidate_id=program.candidate_id,
            challenge=challenge.title,
            when=when,
            in_s=offset,
            minutes=minutes // 60,
        )
        await platform.send_dm(workspace, to, text)

    async def _on_occurrence(self, job: Job) -> None:
        found = await self._load(job)
        if found is None:
            return
        program, occurrence, workspace = found
        platform = self.ctx.platforms[workspace.platform]
        interviewer = Actor(program.interviewer_id, is_interviewer=True)
        if self._late(occurrence.at):
            await self._missed(program, occurrence, workspace, texts.MISSED_DOWN)
            return
        # A previous attempt that died after starting it: the candidate's open interview is ours.
        async with self.ctx.uow() as uow:
            running = await uow.interviews.find_open_for_candidate(
                workspace.id, program.candidate_id
            )
        if running is not None and running.platform_data.get("occurrence") == occurrence.id:
            interview = running
        else:
            try:
                interview = await self.lifecycle.start(
                    workspace,
                    interviewer,
                    program.candidate_id,
                    time_limit_s=program.time_limit_s,
                    token_budget=program.token_budget,
                    challenge_slug=program.challenge_slug,
                    platform_data={**program.platform_data, "occurrence": occurrence.id},
                )
            except DomainError as exc:
                busy = running is not None
                await self._missed(
                    program, occurrence, workspace, texts.MISSED_BUSY if busy else str(exc)
                )
                return
        occurrence.status, occurrence.interview_id = OccurrenceStatus.STARTED, interview.id
        async with self.ctx.uow() as uow:
            await uow.programs.update_occurrence(occurrence, was=OccurrenceStatus.SCHEDULED)
            await uow.commit()
        await platform.send_dm(
            workspace,
            program.interviewer_id,
            texts.occurrence_started(platform.mention, program.candidate_id, program.short_id),
        )

    async def _missed(
        self, program: Program, occurrence: Occurrence, workspace: Workspace, why: str
    ) -> None:
        occurrence.status, occurrence.note = OccurrenceStatus.MISSED, why
        async with self.ctx.uow() as uow:
            changed = await uow.programs.update_occurrence(
                occurrence, was=OccurrenceStatus.SCHEDULED
            )
            await uow.commit()
        if changed:  # told once
            platform = self.ctx.platforms[workspace.platform]
            when = platform.when(occurrence.at, program.timezone)
            await platform.send_dm(
                workspace,
                program.interviewer_id,
                texts.occurrence_missed(platform.mention, program.candidate_id, when, why),
            )
