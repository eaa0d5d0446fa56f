"""Keeping the conversation in step with the stored interview: warnings once, the counter,
the next tick (a durable job: time warnings, counter refreshes, the deadline) and closing.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from core import texts
from core.budget import due_warnings, next_time_event, warning_text
from core.challenges import find_challenge
from core.context import Context
from core.counter import CounterView, build_counter
from core.models import AuditEvent, Challenge, EndReason, Interview, Job, Status
from core.ports import UnitOfWork

log = logging.getLogger(__name__)

TICK = "tick"
CLOSE = "close"
EVALUATE = "evaluate"  # the report (core.reports), added once when the interview ends


def tick_key(interview_id: str) -> str:
    return f"tick:{interview_id}"


def close_key(interview_id: str) -> str:
    return f"close:{interview_id}"


class Upkeep:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        ctx.jobs.on(TICK, self._on_tick)
        ctx.jobs.on(CLOSE, self._on_close)

    async def challenge(self, interview: Interview) -> Challenge:
        async with self.ctx.uow() as uow:
            return await find_challenge(
                uow.challenges, interview.workspace_id, interview.challenge_slug
            )

    def view(self, interview: Interview, challenge: Challenge) -> CounterView:
        return build_counter(interview, challenge.title, self.ctx.clock.now())

    async def refresh(self, interview: Interview, challenge: Challenge | None = None) -> Interview:
        """Announce due warnings (once, whichever process gets there), redraw the counter,
        arm the next tick."""
        ctx = self.ctx
        now = ctx.clock.now()
        if due_warnings(interview, now):
            announced: list[str] = []

            async def warn(uow: UnitOfWork, fresh: Interview) -> list[AuditEvent] | None:
                due = due_warnings(fresh, now)
                if not due:
                    return None
                fresh.warnings_sent = [*fresh.warnings_sent, *(w.key for w in due)]
                announced[:] = [warning_text(due, fresh)]
                return [ctx.event(fresh, None, "warning", threshold=w.key) for w in due]

            interview, changed = await ctx.save(interview.id, warn)
            if changed:
                await ctx.notice(interview, announced[0])
        challenge = challenge or await self.challenge(interview)
        interview = await self._show_counter(interview, self.view(interview, challenge))
        await self.arm(interview, challenge)
        return interview

    async def _show_counter(self, interview: Interview, view: CounterView) -> Interview:
        before = dict(interview.platform_data)
        try:
            await self.ctx.platform(interview).show_counter(interview, view)
        except Exception:
            log.exception("could not update the counter of interview %s", interview.id)
            return interview
        moved = {k: v for k, v in interview.platform_data.items() if before.get(k) != v}
        if not moved:
            return interview

        async def remember(uow: UnitOfWork, fresh: Interview) -> list[AuditEvent] | None:
            fresh.platform_data = {**fresh.platform_data, **moved}
            return []

        saved, _ = await self.ctx.save(interview.id, remember)
        return saved

    async def arm(self, interview: Interview, challenge: Challenge | None = None) -> None:
        """Schedule the interview's tick at its next moment (or cancel it)."""
        ctx = self.ctx
        now = ctx.clock.now()
        when = next_time_event(interview, now)
        if interview.status is Status.ACTIVE:
            challenge = challenge or await self.challenge(interview)
            every = ctx.platform(interview).counter_refresh_s(self.view(interview, challenge))
            if every is not None:
                refresh_at = now + timedelta(seconds=every)
                when = refresh_at if when is None else min(when, refresh_at)
        async with ctx.uow() as uow:
            if when is None:
                await uow.jobs.cancel(tick_key(interview.id), now)
            else:
                await uow.jobs.schedule(_tick(interview.id, when))
            await uow.commit()
        if when is not None:
            ctx.jobs.armed(when)

    async def finish(
        self, interview_id: str, reason: EndReason, actor_id: str, note: str | None = None
    ) -> bool:
        """End the interview once, whoever tries; the closing note and final counter follow
        as a durable job. False if it had ended already."""
        ctx = self.ctx
        note = note or texts.END_NOTES[reason]

        async def end(uow: UnitOfWork, interview: Interview) -> list[AuditEvent] | None:
            if interview.status is Status.ENDED:
                return None
            now = ctx.clock.now()
            fold_pause(interview, now)
            deadline = interview.deadline(now)
            interview.transition(Status.ENDED)
            # Time ran out at the deadline, even if the bot closes it later (it was down).
            late = reason is EndReason.TIME_UP and deadline is not None and deadline < now
            interview.end_reason, interview.ended_at = reason, deadline if late else now
            await uow.jobs.cancel(tick_key(interview.id), now)
            await uow.jobs.schedule(
                Job(
                    CLOSE,
                    close_key(interview.id),
                    now,
                    {"interview_id": interview.id, "note": note},
                )
            )
            await uow.jobs.add_once(evaluate_job(interview))
            detail = {"reason": reason.value, "tokens_used": interview.tokens_used}
            return [ctx.event(interview, actor_id, "ended", **detail)]

        _, ended = await ctx.save(interview_id, end)
        if ended:
            ctx.metrics.interview_ended(reason.value)
            await ctx.jobs.run_now(close_key(interview_id))
            ctx.jobs.armed(ctx.clock.now())  # the report is built in the background
        return ended

    async def _on_tick(self, job: Job) -> None:
        interview = await self.ctx.load(str(job.payload["interview_id"]))
        if interview.status is not Status.ACTIVE:
            return
        if interview.seconds_left(self.ctx.clock.now()) <= 0:
            await self.finish(interview.id, EndReason.TIME_UP, "system")
        else:
            await self.refresh(interview)

    async def _on_close(self, job: Job) -> None:
        interview = await self.ctx.load(str(job.payload["interview_id"]))
        challenge = await self.challenge(interview)
        try:
            await self.ctx.platform(interview).close_room(
                interview, self.view(interview, challenge), str(job.payload["note"])
            )
        except Exception:  # not retried: a second closing note would be worse than none
            log.exception("could not close the conversation of interview %s", interview.id)


def evaluate_job(interview: Interview) -> Job:
    return Job(
        EVALUATE,
        f"evaluate:{interview.id}",
        interview.ended_at or interview.created_at,
        {"interview_id": interview.id},
    )


def fold_pause(interview: Interview, now: datetime) -> None:
    if interview.paused_since is not None:
        interview.paused_total_s += (now - interview.paused_since).total_seconds()
        interview.paused_since = None


def _tick(interview_id: str, when: datetime) -> Job:
    return Job(TICK, tick_key(interview_id), when, {"interview_id": interview_id})
