"""The weekly summary: one message to the team channel per week, exactly once.

Each week's summary is a durable job keyed by the workspace and the local moment it is due
(``summary:<workspace>:<UTC moment>``), added only if absent; when it runs it arms the next
week's. A job left from an older setting (the time was changed, or summaries turned off)
does nothing. Sending claims the calendar week (a done marker, ``summary-sent:<ws>:<week>``,
inserted once), so no restart, second process or change of time sends two in a week.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.calendar import next_weekly, parse_when
from core.context import Context
from core.models import EndReason, Interview, Job, OccurrenceStatus, Status, Workspace
from core.programs import team_channel, team_zone

log = logging.getLogger(__name__)

SUMMARY = "summary"
SENT = "summary-sent"  # a done marker: this week's summary went out
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Week:
    """What a summary reports, for the 7 days before ``end``."""

    end: datetime
    held: int
    completed: int  # ran to their time limit
    ended_early: dict[str, int]  # by reason
    running: int
    time_used_pct: int | None  # average share of the allowed time, over ended interviews
    tokens_used_pct: int | None
    upcoming: list[tuple[datetime, str, str]]  # (when, candidate, challenge) in the next 7 days


class Summaries:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        ctx.jobs.on(SUMMARY, self._on_summary)

    def setting(self, workspace: Workspace) -> tuple[int, time] | None:
        """The workspace's own setting wins over ``WEEKLY_SUMMARY`` (``off`` included)."""
        own = workspace.settings.get("summary")
        text = own if own is not None else self.ctx.config.weekly_summary
        return None if text is None else parse_when(str(text))

    async def arm(self, workspace: Workspace, after: datetime | None = None) -> datetime | None:
        """Add the next summary's job (once per week and workspace)."""
        when = self.setting(workspace)
        if when is None:
            return None
        zone = team_zone(self.ctx, workspace)
        at = next_weekly(after or self.ctx.clock.now(), when[0], when[1], zone)
        key = f"summary:{workspace.id}:{at:%Y-%m-%dT%H:%MZ}"  # the moment, in UTC
        job = Job(SUMMARY, key, at, {"workspace_id": workspace.id})
        async with self.ctx.uow() as uow:
            await uow.jobs.add_once(job)
            await uow.commit()
        self.ctx.jobs.armed(at)
        return at

    async def arm_all(self) -> None:
        async with self.ctx.uow() as uow:
            workspaces = await uow.workspaces.list_all()
        for workspace in workspaces:
            if workspace.platform in self.ctx.platforms:
                await self.arm(workspace)

    async def _on_summary(self, job: Job) -> None:
        async with self.ctx.uow() as uow:
            workspace = await uow.workspaces.get(str(job.payload["workspace_id"]))
        if workspace is None or workspace.platform not in self.ctx.platforms:
            return
        when = self.setting(workspace)
        if when is None:
            return  # turned off since
        zone = team_zone(self.ctx, workspace)
        due = next_weekly(job.due_at - timedelta(seconds=1), when[0], when[1], zone)
        if due != job.due_at:
            await self.arm(workspace)  # the time was changed since: the new one stands
            return
        await self.arm(workspace, after=job.due_at)
        late = self.ctx.clock.now() - job.due_at
        if late > timedelta(seconds=self.ctx.config.schedule_grace_s):
            log.info("summary %s dropped: %s late", job.key, late)
            return
        channel = team_channel(self.ctx, workspace)
        if not channel or not await self._claim_week(workspace, job.due_at, zone):
            return
        platform = self.ctx.platforms[workspace.platform]
        week = await self.week(workspace, job.due_at)
        await platform.post_to_channel(workspace, channel, self.text(workspace, week))

    async def _claim_week(self, workspace: Workspace, at: datetime, zone: str) -> bool:
        """One summary per calendar week, even if its time was changed after it went out:
        a done marker under the week's key, inserted only once."""
        year, week, _ = at.astimezone(ZoneInfo(zone)).isocalendar()
        marker = Job(SENT, f"summary-sent:{workspace.id}:{year}-W{week:02d}", at, done_at=at)
        async with self.ctx.uow() as uow:
            claimed = await uow.jobs.add_once(marker)
            await uow.commit()
        return claimed

    async def week(self, workspace: Workspace, end: datetime) -> Week:
        async with self.ctx.uow() as uow:
            held = await uow.interviews.started_between(workspace.id, end - WEEK, end)
            upcoming = []
            for program in await uow.programs.list_active(workspace.id):
                for occurrence in await uow.programs.occurrences(program.id):
                    if (
                        occurrence.status is OccurrenceStatus.SCHEDULED
                        and end <= occurrence.at < end + WEEK
                    ):
                        upcoming.append(
                            (occurrence.at, program.candidate_id, program.challenge_slug)
                        )
        ended = [i for i in held if i.status is Status.ENDED]
        reasons = Counter(
            i.end_reason.value
            for i in ended
            if i.end_reason is not EndReason.TIME_UP and i.end_reason
        )
        return Week(
            end=end,
            held=len(held),
            completed=sum(i.end_reason is EndReason.TIME_UP for i in ended),
            ended_early=dict(sorted(reasons.items())),
            running=len(held) - len(ended),
            time_used_pct=_average(_time_share(i) for i in ended),
            tokens_used_pct=_average(i.tokens_used / max(1, i.total_budget) for i in ended),
            upcoming=sorted(upcoming),
        )

    def text(self, workspace: Workspace, week: Week) -> str:
        platform = self.ctx.platforms[workspace.platform]
        zone = team_zone(self.ctx, workspace)
        lines = [f"📊 Interviews in the 7 days before {platform.when(week.end, zone)}:"]
        if not week.held:
            lines.append("• none were held.")
        else:
            early = ", ".join(
                f"{n} {reason.replace('_', ' ')}" for reason, n in week.ended_early.items()
            )
            lines.append(
                f"• {week.held} held: {week.completed} completed (ran their full time), "
                f"{sum(week.ended_early.values())} ended early"
                + (f" ({early})" if early else "")
                + (f", {week.running} still running" if week.running else "")
            )
            if week.time_used_pct is not None:
                lines.append(
                    f"• on average {week.time_used_pct}% of the time and "
                    f"{week.tokens_used_pct}% of the tokens were used"
                )
        if week.upcoming:
            lines.append("Scheduled for the next 7 days:")
            lines += [
                f"• {platform.when(at, zone)}: {platform.mention(who)} ({challenge})"
                for at, who, challenge in week.upcoming
            ]
        else:
            lines.append("Nothing is scheduled for the next 7 days.")
        return "\n".join(lines)


def _time_share(interview: Interview) -> float:
    if interview.started_at is None or interview.ended_at is None:
        return 0.0
    spent = (interview.ended_at - interview.started_at).total_seconds() - interview.paused_total_s
    return min(1.0, spent / max(1, interview.allowed_time_s))


def _average(values: Iterable[float]) -> int | None:
    items = list(values)
    return None if not items else round(100 * sum(items) / len(items))
