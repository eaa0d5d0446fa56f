"""Runs a parsed ``/interview`` command against the service and words the reply."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.commands import HELP_TEXT, Command, MentionResolver, usage_error
from core.counter import counter_text
from core.errors import InvalidInput, NotAuthorized
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
        except (ZoneInfoNotFoundError, ValueError):
            raise usage_error(
                "config", f"`{values[0]}` is not a time zone like Europe/Berlin."
            ) from None
        settings["timezone"] = values[0]
        reply = f"Team time zone set to {values[0]}."
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
    await service.queries.update_settings(workspace, **settings)
    return reply
