"""Runs a parsed ``/interview`` command against the service and words the reply."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.calendar import WEEKDAYS, parse_when
from core.commands import HELP_TEXT, Command, MentionResolver, usage_error
from core.counter import counter_text
from core.errors import InvalidInput, NotAuthorized
from core.lifecycle import require_interviewer
from core.models import Actor, Workspace
from core.parsing import format_duration
from core.service import InterviewService


async def run_command(
    service: InterviewService,
    workspace: Workspace,
    actor: Actor,
    command: Command,
    resolve_channel: MentionResolver | None = None,
    resolve_user: MentionResolver | None = None,
    platform_data: dict[str, Any] | None = None,
) -> str:
    """Execute ``command`` and return the (private) reply for the person who typed it.

    ``platform_data`` is handed to ``InterviewService.start`` (e.g. a thread's parent).
    """
    if command.name == "help":
        return HELP_TEXT
    mention = service.platforms[workspace.platform].mention
    if command.name == "challenges":
        config = service.config
        lines = [
            f"• `{c.slug}` — {c.title} ({c.difficulty}, "
            f"{format_duration(c.time_limit_s or config.time_limit_s)}, "
            f"{c.token_budget or config.token_budget:,} tokens)"
            for c in await service.queries.challenges(workspace.id)
        ]
        return (
            "Challenges (with the limits `/interview start` uses when you give none):\n"
            + "\n".join(lines)
        )
    if command.name == "status":
        views = await service.queries.status(workspace, actor)
        if not views:
            return "No interviews are running."
        return "\n".join(
            f"{mention(v.candidate_id)} · {v.challenge_title}: {counter_text(v)}" for v in views
        )
    if command.name == "config":
        return await _configure(service, workspace, actor, command, resolve_channel, resolve_user)
    if command.name in REPORT_COMMANDS:
        return await _reports(service, workspace, actor, command)
    if command.name in SCHEDULE_COMMANDS:
        return await _schedules(service, workspace, actor, command, platform_data)
    if command.name == "start":
        assert command.candidate is not None
        interview = await service.lifecycle.start(
            workspace,
            actor,
            command.candidate,
            time_limit_s=command.seconds,
            token_budget=command.tokens,
            challenge_slug=command.challenge,
            platform_data=platform_data,
        )
        return (
            f"Started `{interview.challenge_slug}` with {mention(interview.candidate_id)}: "
            f"{format_duration(interview.time_limit_s)}, {interview.token_budget:,} tokens."
        )
    interview = await service.queries.find_for_command(workspace, actor, command.candidate)
    who = mention(interview.candidate_id)
    lifecycle = service.lifecycle
    if command.name == "extend":
        done = await lifecycle.extend(
            actor, interview.id, seconds=command.seconds or 0, tokens=command.tokens or 0
        )
        view = await service.queries.counter(done)
        return f"Extended {who}'s interview. {counter_text(view)}"
    if command.name == "pause":
        await lifecycle.pause(actor, interview.id)
        return f"Paused {who}'s interview."
    if command.name == "resume":
        await lifecycle.resume(actor, interview.id)
        return f"Resumed {who}'s interview."
    if command.name == "end":
        await lifecycle.end(actor, interview.id)
        return f"Ended {who}'s interview."
    raise InvalidInput(HELP_TEXT)


async def _configure(
    service: InterviewService,
    workspace: Workspace,
    actor: Actor,
    command: Command,
    resolve_channel: MentionResolver | None,
    resolve_user: MentionResolver | None,
) -> str:
    if not actor.is_interviewer:
        raise NotAuthorized("Only interviewers can change the configuration.")
    key, values = command.args[0].lower(), command.args[1:]
    mention = service.platforms[workspace.platform].mention
    settings: dict[str, Any] = {}
    if key == "timezone" and len(values) == 1:
        try:
            ZoneInfo(values[0])
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: `Europe`, a folder
            raise usage_error(
                "config", f"`{values[0]}` is not a time zone like Europe/Berlin."
            ) from None
        settings["timezone"] = values[0]
        reply = f"Team time zone set to {values[0]}."
    elif key == "summary" and values:
        when = parse_when(" ".join(values))
        settings["summary"] = "off" if when is None else f"{WEEKDAYS[when[0]]} {when[1]:%H:%M}"
        reply = (
            "Weekly summaries are off here."
            if when is None
            else f"Weekly summaries: {_FULL_DAYS[when[0]]}s at {when[1]:%H:%M} team time."
        )
    elif key in ("team-channel", "team_channel") and len(values) == 1 and resolve_channel:
        channel = resolve_channel(values[0])
        if channel is None:
            raise usage_error("config", f"`{values[0]}` is not a channel; pick one with #.")
        settings["team_channel"] = channel
        reply = f"Team notes and weekly summaries will go to <#{channel}>."
    elif key == "channel" and len(values) == 1 and resolve_channel is not None:
        channel = resolve_channel(values[0])
        if channel is None:
            raise usage_error("config", f"`{values[0]}` is not a channel; pick one with #.")
        settings["interviewer_channel"] = channel
        reply = f"Evaluations will go to <#{channel}>."
    elif key == "interviewers" and values and resolve_user is not None:
        users = [resolve_user(v) for v in values]
        if any(u is None for u in users):
            raise usage_error("config", "Mention each interviewer with @.")
        settings["interviewers"] = sorted({u for u in users if u})
        reply = "Interviewers: " + ", ".join(mention(u) for u in settings["interviewers"]) + "."
    else:
        raise usage_error("config", "I can't configure that.")
    fresh = await service.queries.update_settings(workspace, **settings)
    if {"summary", "timezone"} & settings.keys():
        await service.summaries.arm(fresh)
    return reply


REPORT_COMMANDS = ("report", "export", "compare")


async def _reports(
    service: InterviewService, workspace: Workspace, actor: Actor, command: Command
) -> str:
    platform = service.platforms[workspace.platform]
    reports = service.reports
    if command.name == "compare":
        posted = await reports.compare(workspace, actor, command.candidates)
        if posted.text is not None:
            return posted.text + "\n(No interviewers' channel is configured, so only you see this.)"
        return f"Posted the comparison in <#{posted.target.channel_id}>."
    assert command.candidate is not None
    who = platform.mention(command.candidate)
    if command.name == "export":
        file = await reports.export(workspace, actor, command.candidate)
        await platform.send_file(
            workspace, actor.user_id, f"The transcript of {who}'s latest interview.", file
        )
        return f"Sent you the transcript of {who}'s latest interview ({file.filename}) privately."
    posted = await reports.repost(workspace, actor, command.candidate)
    if posted.target.channel_id is None:
        return f"Sent you {who}'s latest report directly (no interviewers' channel is set)."
    return f"Posted {who}'s latest report in <#{posted.target.channel_id}>."


SCHEDULE_COMMANDS = ("schedule", "schedules", "unschedule", "skip", "summary")
_FULL_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


async def _schedules(
    service: InterviewService,
    workspace: Workspace,
    actor: Actor,
    command: Command,
    platform_data: dict[str, Any] | None,
) -> str:
    platform = service.platforms[workspace.platform]
    mention, when = platform.mention, platform.when
    programs = service.programs
    if command.name == "schedule":
        assert command.candidate is not None
        program, occurrences = await programs.schedule(
            workspace,
            actor,
            command.candidate,
            weekday=command.weekday,
            clock=command.clock,
            weeks=command.weeks,
            reminders_s=command.reminders,
            time_limit_s=command.seconds,
            token_budget=command.tokens,
            challenge_slug=command.challenge,
            platform_data=platform_data,
        )
        return (
            f"Scheduled `{program.short_id}`: `{program.challenge_slug}` with "
            f"{mention(program.candidate_id)}, {_FULL_DAYS[program.weekday]}s at "
            f"{program.local_time} {program.timezone}, "
            + ("once" if program.count == 1 else f"{program.count} times")
            + "; the first is "
            f"{when(occurrences[0].at, program.timezone)}. "
            + (
                "Reminders go out "
                + ", ".join(_before(s) for s in program.reminders_s)
                + " before each."
                if program.reminders_s
                else "No reminders."
            )
        )
    if command.name == "schedules":
        views = await programs.list(workspace, actor)
        if not views:
            return "No interviews are scheduled. Add one with `/interview schedule @candidate`."
        return "Scheduled programs:\n" + "\n".join(
            f"• `{v.program.short_id}` {mention(v.program.candidate_id)} · {v.challenge.title} · "
            f"{_FULL_DAYS[v.program.weekday]}s {v.program.local_time} {v.program.timezone} · "
            f"next {when(v.next_at, v.program.timezone)} · {v.remaining} left"
            for v in views
            if v.next_at is not None
        )
    if command.name == "unschedule":
        assert command.program is not None
        program = await programs.unschedule(workspace, actor, command.program)
        return (
            f"Cancelled program `{program.short_id}` with {mention(program.candidate_id)}: no "
            "more interviews or reminders."
        )
    if command.name == "skip":
        assert command.program is not None
        program, occurrence = await programs.skip(workspace, actor, command.program)
        return (
            f"Skipped the interview of {when(occurrence.at, program.timezone)} "
            f"(program `{program.short_id}`); its reminders won't go out."
        )
    require_interviewer(actor)
    week = await service.summaries.week(workspace, service.clock.now())
    return service.summaries.text(workspace, week)


def _before(seconds: int) -> str:
    return format_duration(seconds).replace(" ", "")
