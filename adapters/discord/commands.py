"""The ``/interview`` command group with typed options (a discord.py app-command group).

What every sub-command shares runs in discord.py's own hooks of the group (see
``discord/app_commands/commands.py`` and ``tree.py`` of discord.py 2.7):

* :meth:`InterviewCommands.interaction_check` runs before each sub-command's callback
  (``Command._invoke_with_namespace`` -> ``_check_can_run``), also for ``config ...`` (the
  binding's check runs after the subgroup's), and never for autocomplete. It defers the
  answer (ephemeral) first thing, within Discord's 3 s, then resolves workspace and actor
  once and stashes them on ``interaction.extras``.
* :meth:`InterviewCommands.on_error` receives what a sub-command raised, wrapped in
  ``CommandInvokeError`` (``Command._do_call``), and whatever ``AppCommandError`` the check
  raised. A non-``AppCommandError`` raised in a check is not caught by discord.py at all
  (``CommandTree._call`` catches ``AppCommandError`` only), so the check wraps its failures
  in :class:`CheckError`.
"""

from __future__ import annotations

import io
import logging
import re
from typing import Any

import discord
from discord import app_commands

from adapters.discord.access import Access, for_this_app
from adapters.discord.inflight import InFlight
from adapters.discord.platform import DISCORD_LIMIT
from core.calendar import MAX_WEEKS, WEEKDAYS, parse_clock, parse_reminders, parse_weekday
from core.commands import USAGE, Command, MentionResolver, usage_error
from core.dispatch import run_command
from core.errors import DomainError, InvalidInput, NotAuthorized, NotFound
from core.models import Actor, Workspace
from core.parsing import MAX_DURATION_SECONDS, MAX_TOKEN_BUDGET
from core.service import InterviewService
from core.text import split_message

log = logging.getLogger(__name__)

MAX_MINUTES = MAX_DURATION_SECONDS // 60
Minutes = app_commands.Range[int, 1, 1440]  # MAX_MINUTES
Tokens = app_commands.Range[int, 1, 10_000_000]  # core.parsing.MAX_TOKEN_BUDGET
Weeks = app_commands.Range[int, 1, 52]  # core.calendar.MAX_WEEKS
FAILURE = "Something went wrong on our side; nothing was changed. Please try again."
NOT_INTERVIEWER = (
    "Only interviewers can do that: members with Manage Server or the interviewer role."
)
QUIET = discord.AllowedMentions.none()

# Sub-commands anyone in the server may run (the rest are for interviewers).
EVERYONE: dict[Any, Any] = {"everyone": True}
# Where interaction_check leaves what it resolved for the sub-command.
WORKSPACE = "interview_buddy.workspace"
ACTOR = "interview_buddy.actor"

# Each /interview command as a Discord user types it (options, not words); the engine's
# messages name the text forms of core.commands.USAGE, which discord_wording() replaces.
DISCORD_USAGE = {
    "start": "/interview start candidate:@user [minutes] [tokens] [challenge]",
    "extend": "/interview extend candidate:@user [minutes] [tokens]",
    "pause": "/interview pause candidate:@user",
    "resume": "/interview resume candidate:@user",
    "end": "/interview end candidate:@user",
    "schedule": (
        "/interview schedule candidate:@user [day:mon..sun] [time:15:00] [weeks:1-52] "
        "[minutes] [tokens] [challenge]"
    ),
    "schedules": "/interview schedules",
    "unschedule": "/interview unschedule program:<id>",
    "skip": "/interview skip program:<id>",
    "summary": "/interview summary",
    "report": "/interview report candidate:@user",
    "export": "/interview export candidate:@user",
    "compare": "/interview compare first:@user second:@user [third:@user] [fourth:@user]",
    "status": "/interview status",
    "challenges": "/interview challenges",
    "help": "/interview help",
    "config": (
        "/interview config channel|interview_channel|team_channel|role|timezone "
        "or config summary when:fri 17:00 (or off)"
    ),
}
DISCORD_HELP = "Interview Buddy commands:\n" + "\n".join(
    f"• `{form}`" for form in DISCORD_USAGE.values()
)
DAY_CHOICES = [
    app_commands.Choice(name=name, value=value)
    for name, value in zip(
        ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        WEEKDAYS,
        strict=True,
    )
]


def discord_wording(text: str) -> str:
    """An engine message with every text-command form (``Usage: `/interview start @candidate
    …```, the help) in its Discord form."""
    for name, form in USAGE.items():
        text = text.replace(f"`{form}`", f"`{DISCORD_USAGE.get(name, form)}`")
    # hints such as "End it first with `/interview end <@42>`" or "Add one with
    # `/interview schedule @candidate`": the candidate is an option on Discord
    return _HINT.sub(
        lambda m: f"`/interview {m['name']} candidate:{m['who'].replace('@candidate', '@user')}`",
        text,
    )


_HINT = re.compile(r"`/interview (?P<name>\w+) (?P<who><@\d+>|@candidate)`")


# ---------------------------------------------------------------------- options -> Command
# What the commands' options become. Discord's client keeps numbers within the ranges above
# and days to their choices, but discord.py does not check what arrives (another client, an
# old version of the command): anything out of range is refused here, with the usage.


def _person(name: str, candidate: discord.abc.User) -> str:
    if candidate.bot:
        raise usage_error(name, "The candidate must be a person, not a bot.")
    return str(candidate.id)


def _seconds(name: str, minutes: int | None) -> int | None:
    if minutes is None:
        return None
    if not 1 <= minutes <= MAX_MINUTES:
        raise usage_error(
            name, f"`minutes` must be from 1 to {MAX_MINUTES} (at least 1 minute, at most 24 h)."
        )
    return minutes * 60


def _tokens(name: str, tokens: int | None) -> int | None:
    if tokens is not None and not 1 <= tokens <= MAX_TOKEN_BUDGET:
        raise usage_error(name, f"`tokens` must be from 1 to {MAX_TOKEN_BUDGET:,}.")
    return tokens


def _challenge(challenge: str | None) -> str | None:
    return (challenge or "").strip().lower() or None


def start_command(
    candidate: discord.abc.User,
    minutes: int | None = None,
    tokens: int | None = None,
    challenge: str | None = None,
) -> Command:
    """``/interview start``'s options."""
    return Command(
        "start",
        candidate=_person("start", candidate),
        seconds=_seconds("start", minutes),
        tokens=_tokens("start", tokens),
        challenge=_challenge(challenge),
    )


def extend_command(
    candidate: discord.abc.User, minutes: int | None = None, tokens: int | None = None
) -> Command:
    """``/interview extend``'s options (at least one amount: the engine says so otherwise)."""
    return Command(
        "extend",
        candidate=str(candidate.id),
        seconds=_seconds("extend", minutes),
        tokens=_tokens("extend", tokens),
    )


def schedule_command(
    candidate: discord.abc.User,
    day: str | None = None,
    time: str | None = None,
    weeks: int | None = None,
    minutes: int | None = None,
    tokens: int | None = None,
    challenge: str | None = None,
    reminders: str | None = None,
) -> Command:
    """``/interview schedule``'s options."""
    who = _person("schedule", candidate)
    try:
        weekday = None if day is None else parse_weekday(day)
        clock = None if time is None else parse_clock(time.strip())
        offsets = None if reminders is None else parse_reminders(f"remind:{reminders}")
    except InvalidInput as exc:
        raise usage_error("schedule", str(exc)) from None
    if weeks is not None and not 1 <= weeks <= MAX_WEEKS:
        raise usage_error("schedule", f"`weeks` must be from 1 to {MAX_WEEKS}.")
    return Command(
        "schedule",
        candidate=who,
        weekday=weekday,
        clock=clock,
        weeks=weeks,
        seconds=_seconds("schedule", minutes),
        tokens=_tokens("schedule", tokens),
        challenge=_challenge(challenge),
        reminders=offsets,
    )


def program_command(name: str, program: str) -> Command:
    """``/interview unschedule|skip program:<id>``."""
    short_id = program.strip().lower()
    if not short_id:
        raise usage_error(name, "Name the program by its id (`/interview schedules`).")
    return Command(name, program=short_id)


def compare_command(*people: discord.abc.User | None) -> Command:
    """``/interview compare``: the people given (the engine wants two to four different)."""
    return Command("compare", candidates=tuple(str(u.id) for u in people if u is not None))


def timezone_command(timezone: str) -> Command:
    """``/interview config timezone``."""
    return Command("config", args=("timezone", timezone.strip()))


def summary_command(when: str) -> Command:
    """``/interview config summary when:…``."""
    return Command("config", args=("summary", *(when.split() or [""])))


def channel_id(word: str) -> str | None:
    """``<#123>`` (what the Discord commands hand the engine's config) -> ``123``."""
    found = word.strip().removeprefix("<#").removesuffix(">")
    return found if found.isdigit() else None


class CheckError(app_commands.CheckFailure):
    """:meth:`InterviewCommands.interaction_check` did not let the command run;
    ``original`` says why (a :class:`DomainError` is shown to the user)."""

    def __init__(self, original: Exception) -> None:
        super().__init__(str(original))
        self.original = original


class NotAcknowledged(app_commands.CheckFailure):
    """Discord refused the defer: the interaction expired (10062) or was acknowledged
    already (40060: another bot process answered it). Nothing more can be sent for it."""


async def answer(interaction: discord.Interaction[Any], text: str) -> None:
    """A private answer: the follow-up of the defer, or the first response if none was sent;
    longer than a Discord message (a long list of schedules), in several."""
    for part in split_message(text, DISCORD_LIMIT):
        if interaction.response.is_done():
            await interaction.followup.send(part, ephemeral=True, allowed_mentions=QUIET)
        else:
            await interaction.response.send_message(part, ephemeral=True, allowed_mentions=QUIET)


def context(interaction: discord.Interaction[Any]) -> tuple[Workspace, Actor]:
    """What :meth:`InterviewCommands.interaction_check` resolved for this interaction."""
    return interaction.extras[WORKSPACE], interaction.extras[ACTOR]


class InterviewTree(app_commands.CommandTree[Any]):
    """The command tree; its check runs first for every command and autocomplete
    (``CommandTree._call``): one addressed to another application is dropped, unanswered."""

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        return for_this_app(interaction)


class InterviewCommands(app_commands.Group):
    """``/interview start|extend|pause|resume|end|status|challenges|help|schedule|schedules|
    unschedule|skip|summary|report|export|compare|config ...``"""

    config = app_commands.Group(name="config", description="Configure Interview Buddy here")

    def __init__(
        self, service: InterviewService, access: Access, inflight: InFlight | None = None
    ) -> None:
        super().__init__(name="interview", description="AI-assisted technical interviews")
        self.service = service
        self.access = access
        self.inflight = inflight or InFlight()

    # ------------------------------------------------------------------ the hooks

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        """Defer within 3 s, resolve workspace and actor once, refuse non-interviewers."""
        self.inflight.interaction()  # the task runs the check, the command and on_error
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
        except discord.HTTPException as exc:
            raise NotAcknowledged(str(exc)) from exc
        try:
            workspace, actor = await self.access.identify(interaction)
        except Exception as exc:
            raise CheckError(exc) from exc
        command = interaction.command
        for_everyone = command is not None and command.extras.get("everyone", False)
        if not actor.is_interviewer and not for_everyone:
            raise CheckError(NotAuthorized(NOT_INTERVIEWER))
        interaction.extras[WORKSPACE] = workspace
        interaction.extras[ACTOR] = actor
        return True

    async def on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError, /
    ) -> None:
        """A refusal becomes a private "❌ …"; anything else the generic failure, logged."""
        name = interaction.command.qualified_name if interaction.command else "interview"
        if isinstance(error, NotAcknowledged):
            log.info("/%s not answered: %s", name, error)
            return
        original: BaseException = error
        if isinstance(error, app_commands.CommandInvokeError | CheckError):
            original = error.original
        if isinstance(original, DomainError):
            text = f"❌ {discord_wording(str(original))}"
        else:
            log.error("/%s failed", name, exc_info=original)
            text = FAILURE
        try:
            await answer(interaction, text)
        except discord.HTTPException:
            log.warning("could not answer /%s", name, exc_info=True)

    # ------------------------------------------------------------------ helpers

    async def _dispatch(
        self,
        interaction: discord.Interaction[Any],
        command: Command,
        platform_data: dict[str, Any] | None = None,
        resolve_channel: MentionResolver | None = None,
        *,
        with_usage: bool = False,
    ) -> None:
        """The same command logic as Slack and the console (core.dispatch). ``with_usage``:
        a refusal of what was typed (bad or unknown input) ends with the command's usage."""
        workspace, actor = context(interaction)
        try:
            reply = await run_command(
                self.service,
                workspace,
                actor,
                command,
                resolve_channel=resolve_channel,
                platform_data=platform_data,
            )
        except (InvalidInput, NotFound) as exc:
            if not with_usage or "\nUsage:" in str(exc):
                raise
            raise usage_error(command.name, str(exc)) from exc
        await answer(interaction, discord_wording(reply))

    async def _configure(
        self, interaction: discord.Interaction[Any], key: str, value: str, reply: str
    ) -> None:
        workspace, _ = context(interaction)
        await self.service.queries.update_settings(workspace, **{key: value})
        await answer(interaction, reply)

    # ------------------------------------------------------------------ commands

    @app_commands.command(name="start", description="Start an interview in a private thread")
    @app_commands.describe(
        candidate="Who is interviewed",
        minutes="Time limit in minutes (default from settings)",
        tokens="Token budget (default from settings)",
        challenge="Challenge to solve",
    )
    async def start(
        self,
        interaction: discord.Interaction[Any],
        candidate: discord.User,
        minutes: Minutes | None = None,
        tokens: Tokens | None = None,
        challenge: str | None = None,
    ) -> None:
        command = start_command(candidate, minutes, tokens, challenge)
        workspace, _ = context(interaction)
        parent = self.access.interview_parent(workspace, interaction)
        await self._dispatch(interaction, command, {"parent_channel": str(parent)})

    @app_commands.command(name="schedule", description="Schedule a weekly interview")
    @app_commands.describe(
        candidate="Who is interviewed",
        day="Day of the week (default Friday)",
        time="Time of day in the team's time zone, 24-hour HH:MM (default 15:00)",
        weeks="How many weekly interviews (default 12)",
        minutes="Time limit in minutes (default from the challenge or settings)",
        tokens="Token budget (default from the challenge or settings)",
        challenge="Challenge to solve",
        reminders="Reminders before each, e.g. 24h,1h,5m or off (default from settings)",
    )
    @app_commands.choices(day=DAY_CHOICES)
    async def schedule(
        self,
        interaction: discord.Interaction[Any],
        candidate: discord.User,
        day: str | None = None,
        time: str | None = None,
        weeks: Weeks | None = None,
        minutes: Minutes | None = None,
        tokens: Tokens | None = None,
        challenge: str | None = None,
        reminders: str | None = None,
    ) -> None:
        command = schedule_command(
            candidate, day, time, weeks, minutes, tokens, challenge, reminders
        )
        workspace, _ = context(interaction)
        parent = self.access.interview_parent(workspace, interaction)
        # The candidate's name labels the program where Discord can't render a mention (the
        # program id suggestions: members are not cached without the members intent).
        data = {"parent_channel": str(parent), "candidate_name": candidate.display_name}
        await self._dispatch(interaction, command, data, with_usage=True)

    @schedule.autocomplete("challenge")
    @start.autocomplete("challenge")
    async def challenge_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        # Autocomplete skips interaction_check (CommandTree._call -> _invoke_autocomplete).
        workspace_id = None
        if interaction.guild_id is not None:
            workspace_id = (await self.access.workspace(interaction)).id
        found = await self.service.queries.challenges(workspace_id)
        needle = current.lower()
        return [
            app_commands.Choice(name=f"{c.title} ({c.difficulty})"[:100], value=c.slug)
            for c in found
            if needle in c.slug or needle in c.title.lower()
        ][:25]

    @app_commands.command(name="extend", description="Give an interview more time or tokens")
    async def extend(
        self,
        interaction: discord.Interaction[Any],
        candidate: discord.User,
        minutes: Minutes | None = None,
        tokens: Tokens | None = None,
    ) -> None:
        await self._dispatch(interaction, extend_command(candidate, minutes, tokens))

    @app_commands.command(name="pause", description="Stop the clock")
    async def pause(self, interaction: discord.Interaction[Any], candidate: discord.User) -> None:
        await self._dispatch(interaction, Command("pause", candidate=str(candidate.id)))

    @app_commands.command(name="resume", description="Restart the clock")
    async def resume(self, interaction: discord.Interaction[Any], candidate: discord.User) -> None:
        await self._dispatch(interaction, Command("resume", candidate=str(candidate.id)))

    @app_commands.command(name="end", description="End an interview now")
    async def end(self, interaction: discord.Interaction[Any], candidate: discord.User) -> None:
        await self._dispatch(interaction, Command("end", candidate=str(candidate.id)))

    @app_commands.command(name="status", description="Your running interviews")
    async def status(self, interaction: discord.Interaction[Any]) -> None:
        await self._dispatch(interaction, Command("status"))

    @app_commands.command(name="challenges", description="The challenge library", extras=EVERYONE)
    async def challenges(self, interaction: discord.Interaction[Any]) -> None:
        await self._dispatch(interaction, Command("challenges"))

    @app_commands.command(name="help", description="How to use Interview Buddy", extras=EVERYONE)
    async def help(self, interaction: discord.Interaction[Any]) -> None:
        await answer(interaction, DISCORD_HELP)

    @app_commands.command(name="schedules", description="The weekly interviews scheduled here")
    async def schedules(self, interaction: discord.Interaction[Any]) -> None:
        await self._dispatch(interaction, Command("schedules"))

    @app_commands.command(name="unschedule", description="Cancel a weekly interview program")
    @app_commands.describe(program="The program's id (see /interview schedules)")
    async def unschedule(self, interaction: discord.Interaction[Any], program: str) -> None:
        await self._dispatch(interaction, program_command("unschedule", program), with_usage=True)

    @app_commands.command(name="skip", description="Skip a program's next interview")
    @app_commands.describe(program="The program's id (see /interview schedules)")
    async def skip(self, interaction: discord.Interaction[Any], program: str) -> None:
        await self._dispatch(interaction, program_command("skip", program), with_usage=True)

    @skip.autocomplete("program")
    @unschedule.autocomplete("program")
    async def program_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        # No interaction_check here: only interviewers are shown the programs.
        if interaction.guild_id is None:
            return []
        workspace, actor = await self.access.identify(interaction)
        if not actor.is_interviewer:
            return []
        needle = current.strip().lower()
        choices = []
        for view in await self.service.programs.list(workspace, actor):
            program = view.program
            who = program.platform_data.get("candidate_name") or program.candidate_id
            label = (
                f"{program.short_id} · {who} · {view.challenge.title} · "
                f"{WEEKDAYS[program.weekday]} {program.local_time} · {view.remaining} left"
            )
            if needle in label.lower():
                choices.append(app_commands.Choice(name=label[:100], value=program.short_id))
        return choices[:25]

    @app_commands.command(name="summary", description="This week's interviews, privately")
    async def summary(self, interaction: discord.Interaction[Any]) -> None:
        await self._dispatch(interaction, Command("summary"))

    # ------------------------------------------------------------------ reports
    # Interviewers only (the group's check); the engine refuses a report about oneself.

    @app_commands.command(name="report", description="Post a candidate's latest report again")
    @app_commands.describe(candidate="Whose report")
    async def report(self, interaction: discord.Interaction[Any], candidate: discord.User) -> None:
        await self._dispatch(interaction, Command("report", candidate=str(candidate.id)))

    @app_commands.command(
        name="export", description="The transcript of a candidate's latest interview, privately"
    )
    @app_commands.describe(candidate="Whose transcript")
    async def export(self, interaction: discord.Interaction[Any], candidate: discord.User) -> None:
        workspace, actor = context(interaction)
        file = await self.service.reports.export(workspace, actor, str(candidate.id))
        # The follow-up of the ephemeral defer: only the caller sees it, file and all.
        await interaction.followup.send(
            f"The transcript of <@{candidate.id}>'s latest interview ({file.filename}).",
            file=discord.File(io.BytesIO(file.content), filename=file.filename),
            ephemeral=True,
            allowed_mentions=QUIET,
        )

    @app_commands.command(name="compare", description="Latest reports side by side")
    @app_commands.describe(
        first="A candidate", second="Another candidate", third="Optional", fourth="Optional"
    )
    async def compare(
        self,
        interaction: discord.Interaction[Any],
        first: discord.User,
        second: discord.User,
        third: discord.User | None = None,
        fourth: discord.User | None = None,
    ) -> None:
        await self._dispatch(interaction, compare_command(first, second, third, fourth))

    # ------------------------------------------------------------------ config

    @config.command(name="channel", description="Where evaluations are posted")
    async def config_channel(
        self, interaction: discord.Interaction[Any], channel: discord.TextChannel
    ) -> None:
        await self._configure(
            interaction,
            "interviewer_channel",
            str(channel.id),
            f"Evaluations will go to <#{channel.id}>.",
        )

    @config.command(
        name="interview_channel", description="Parent channel of the private interview threads"
    )
    async def config_interview_channel(
        self, interaction: discord.Interaction[Any], channel: discord.TextChannel
    ) -> None:
        await self._configure(
            interaction,
            "interview_channel",
            str(channel.id),
            f"Interview threads will open under <#{channel.id}>.",
        )

    @config.command(name="role", description="The interviewer role")
    async def config_role(self, interaction: discord.Interaction[Any], role: discord.Role) -> None:
        await self._configure(
            interaction,
            "interviewer_role",
            str(role.id),
            f"Interviewers: members with <@&{role.id}>.",
        )

    # The next three go through the engine's config (core.dispatch), which re-arms the weekly
    # summary when its time or the team's time zone changes.

    @config.command(name="timezone", description="The team's time zone (IANA name)")
    async def config_timezone(self, interaction: discord.Interaction[Any], timezone: str) -> None:
        await self._dispatch(interaction, timezone_command(timezone))

    @config.command(name="summary", description="When the weekly summary is posted, or off")
    @app_commands.describe(when="A day and a time in the team's time zone (fri 17:00), or off")
    async def config_summary(self, interaction: discord.Interaction[Any], when: str) -> None:
        await self._dispatch(interaction, summary_command(when))

    @config.command(
        name="team_channel", description="Where weekly summaries and team notes are posted"
    )
    async def config_team_channel(
        self, interaction: discord.Interaction[Any], channel: discord.TextChannel
    ) -> None:
        command = Command("config", args=("team-channel", f"<#{channel.id}>"))
        await self._dispatch(interaction, command, resolve_channel=channel_id)
