"""Interviewer use cases: start, extend, pause, resume, end, and the counter's buttons."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core import texts
from core.budget import drop_stale_warnings
from core.challenges import find_challenge, system_prompt_for
from core.context import Context, EngineConfig
from core.errors import Conflict, IllegalTransition, InvalidInput, NotAuthorized
from core.models import Actor, AuditEvent, EndReason, Interview, Status, Workspace
from core.parsing import MIN_TIME_LIMIT_SECONDS, MIN_TOKEN_BUDGET
from core.ports import UnitOfWork
from core.tokens import TokenCounter
from core.upkeep import Upkeep, fold_pause

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Control:
    """A button under the counter; ``name`` is stable (platform ids are built from it)."""

    name: str
    label: str


def controls(config: EngineConfig) -> tuple[Control, ...]:
    """The interviewer buttons, labelled with the amounts the engine applies."""
    return (
        Control("extend_time", f"+{config.extend_time_s // 60} min"),
        Control("extend_tokens", f"+{config.extend_tokens // 1000}k tokens"),
        Control("pause", "Pause"),
        Control("resume", "Resume"),
        Control("end", "End"),
    )


def require_interviewer(actor: Actor, interview: Interview | None = None) -> None:
    if interview is not None and actor.user_id == interview.candidate_id:
        raise NotAuthorized(texts.CANDIDATE_CANNOT)
    if actor.is_interviewer or (
        interview is not None and actor.user_id == interview.interviewer_id
    ):
        return
    raise NotAuthorized(texts.NOT_INTERVIEWER)


class Lifecycle:
    def __init__(self, ctx: Context, upkeep: Upkeep) -> None:
        self.ctx = ctx
        self.upkeep = upkeep

    async def start(
        self,
        workspace: Workspace,
        actor: Actor,
        candidate_id: str,
        *,
        time_limit_s: int | None = None,
        token_budget: int | None = None,
        challenge_slug: str | None = None,
        platform_data: dict[str, Any] | None = None,
    ) -> Interview:
        """Open the private conversation, post challenge and counter, start the clock.

        Limits come from the command, else the challenge's suggestion, else the defaults.
        ``platform_data`` seeds what the adapter needs to open the room (e.g. a thread's
        parent channel).
        """
        ctx, config = self.ctx, self.ctx.config
        require_interviewer(actor)
        if token_budget is not None and token_budget < MIN_TOKEN_BUDGET:
            raise InvalidInput(texts.too_small_budget(token_budget, MIN_TOKEN_BUDGET))
        if time_limit_s is not None and time_limit_s < MIN_TIME_LIMIT_SECONDS:
            raise InvalidInput(texts.AT_LEAST_A_MINUTE)
        if candidate_id == actor.user_id:
            raise InvalidInput(texts.NOT_YOURSELF)
        platform = ctx.platforms[workspace.platform]
        async with ctx.uow() as uow:
            challenge = await find_challenge(
                uow.challenges, workspace.id, challenge_slug or config.challenge_slug
            )
            if await uow.interviews.find_open_for_candidate(workspace.id, candidate_id):
                raise Conflict(texts.already_running(platform.mention, candidate_id))
            interview = Interview(
                workspace_id=workspace.id,
                platform=workspace.platform,
                candidate_id=candidate_id,
                interviewer_id=actor.user_id,
                challenge_slug=challenge.slug,
                time_limit_s=time_limit_s or challenge.time_limit_s or config.time_limit_s,
                token_budget=token_budget or challenge.token_budget or config.token_budget,
                created_at=ctx.clock.now(),
                platform_data=dict(platform_data or {}),
            )
            interview.next_prompt_tokens = TokenCounter(
                challenge.model or config.model
            ).count_messages(
                [
                    {"role": "system", "content": system_prompt_for(challenge)},
                    {"role": "user", "content": ""},
                ]
            )
            await uow.interviews.add(interview, ctx.event(interview, actor.user_id, "created"))
            await uow.commit()
        try:
            await platform.open_room(interview, challenge, self.upkeep.view(interview, challenge))
        except Exception as exc:
            log.exception("could not open the conversation for interview %s", interview.id)
            await self._cancel_unopened(interview, actor, str(exc))
            raise Conflict(texts.ROOM_FAILED) from exc
        opened = (interview.room_key, dict(interview.platform_data))

        async def begin(uow: UnitOfWork, fresh: Interview) -> list[AuditEvent]:
            fresh.room_key, fresh.platform_data = opened[0], opened[1]
            fresh.transition(Status.ACTIVE)
            fresh.started_at = ctx.clock.now()
            return [
                ctx.event(
                    fresh,
                    actor.user_id,
                    "started",
                    time_limit_s=fresh.time_limit_s,
                    token_budget=fresh.token_budget,
                    challenge=challenge.slug,
                )
            ]

        try:
            interview, _ = await ctx.save(interview.id, begin)
        except Conflict:
            # Another start for the same candidate won the race while the room was opening.
            await self._cancel_unopened(interview, actor, "lost a start race", close=True)
            raise
        ctx.metrics.interview_started()
        await self.upkeep.refresh(interview, challenge)
        return interview

    async def _cancel_unopened(
        self, interview: Interview, actor: Actor, why: str, *, close: bool = False
    ) -> None:
        ctx = self.ctx
        room = (interview.room_key, dict(interview.platform_data))

        async def cancel(uow: UnitOfWork, fresh: Interview) -> list[AuditEvent] | None:
            if fresh.status is Status.ENDED:
                return None
            fresh.transition(Status.ENDED)
            fresh.end_reason, fresh.ended_at = EndReason.CANCELLED, ctx.clock.now()
            return [ctx.event(fresh, actor.user_id, "cancelled", error=why)]

        await ctx.save(interview.id, cancel)
        if close and room[0] is not None:
            # Its room opened: close it (without linking it, which the winner may hold).
            interview.room_key, interview.platform_data = room
            interview.status, interview.end_reason = Status.ENDED, EndReason.CANCELLED
            challenge = await self.upkeep.challenge(interview)
            try:
                await ctx.platform(interview).close_room(
                    interview,
                    self.upkeep.view(interview, challenge),
                    texts.END_NOTES[EndReason.CANCELLED],
                )
            except Exception:
                log.exception("could not close the conversation of interview %s", interview.id)

    async def extend(
        self, actor: Actor, interview_id: str, *, seconds: int = 0, tokens: int = 0
    ) -> Interview:
        """Add time and/or tokens to an open interview (at most 24 h / 10M tokens in all)."""
        if seconds <= 0 and tokens <= 0:
            raise InvalidInput(texts.SAY_HOW_MUCH)
        ctx = self.ctx

        async def extend(uow: UnitOfWork, interview: Interview) -> list[AuditEvent]:
            require_interviewer(actor, interview)
            if not interview.is_open:
                raise IllegalTransition(texts.ALREADY_ENDED)
            refusal = texts.time_cap(interview.allowed_time_s, seconds) or texts.token_cap(
                interview.total_budget, tokens
            )
            if refusal:
                raise InvalidInput(refusal)
            interview.extra_time_s += max(0, seconds)
            interview.extra_tokens += max(0, tokens)
            drop_stale_warnings(interview, ctx.clock.now())
            return [ctx.event(interview, actor.user_id, "extended", seconds=seconds, tokens=tokens)]

        interview, _ = await ctx.save(interview_id, extend)
        await ctx.notice(interview, texts.extended(seconds, tokens))
        return await self.upkeep.refresh(interview)

    async def pause(self, actor: Actor, interview_id: str) -> Interview:
        """Stop the clock; candidate messages are kept but not answered until resumed."""
        ctx = self.ctx

        async def pause(uow: UnitOfWork, interview: Interview) -> list[AuditEvent]:
            require_interviewer(actor, interview)
            interview.transition(Status.PAUSED)
            interview.paused_since = ctx.clock.now()
            return [ctx.event(interview, actor.user_id, "paused")]

        interview, _ = await ctx.save(interview_id, pause)
        await ctx.notice(interview, texts.PAUSED)
        return await self.upkeep.refresh(interview)

    async def resume(self, actor: Actor, interview_id: str) -> Interview:
        """Restart the clock where it stopped."""
        ctx = self.ctx

        async def resume(uow: UnitOfWork, interview: Interview) -> list[AuditEvent]:
            require_interviewer(actor, interview)
            interview.transition(Status.ACTIVE)
            fold_pause(interview, ctx.clock.now())
            return [ctx.event(interview, actor.user_id, "resumed")]

        interview, _ = await ctx.save(interview_id, resume)
        await ctx.notice(interview, texts.RESUMED)
        return await self.upkeep.refresh(interview)

    async def end(self, actor: Actor, interview_id: str) -> Interview:
        """End an interview on an interviewer's request."""
        interview = await self.ctx.load(interview_id)
        require_interviewer(actor, interview)
        if interview.status is Status.ENDED:
            raise IllegalTransition(texts.ALREADY_ENDED)
        if not await self.upkeep.finish(
            interview_id, EndReason.ENDED_BY_INTERVIEWER, actor.user_id
        ):
            raise IllegalTransition(texts.ALREADY_ENDED)
        return await self.ctx.load(interview_id)

    async def control(self, actor: Actor, interview_id: str, action: str) -> Interview:
        """A counter button: the same rules as the commands, the amounts from the config."""
        config = self.ctx.config
        if action == "extend_time":
            return await self.extend(actor, interview_id, seconds=config.extend_time_s)
        if action == "extend_tokens":
            return await self.extend(actor, interview_id, tokens=config.extend_tokens)
        if action == "pause":
            return await self.pause(actor, interview_id)
        if action == "resume":
            return await self.resume(actor, interview_id)
        if action == "end":
            return await self.end(actor, interview_id)
        raise InvalidInput("Unknown button.")
