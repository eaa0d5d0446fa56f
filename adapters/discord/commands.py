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

import logging
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import discord
from discord import app_commands

from adapters.discord.access import Access
from adapters.discord.inflight import InFlight
from core.commands import HELP_TEXT, Command
from core.dispatch import run_command
from core.errors import DomainError, InvalidInput, NotAuthorized
from core.models import Actor, Workspace
from core.service import InterviewService

log = logging.getLogger(__name__)

Minutes = app_commands.Range[int, 1, 1440]
Tokens = app_commands.Range[int, 1, 10_000_000]
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

DISCORD_HELP = (
    HELP_TEXT.replace(
        "/interview start @candidate [45m|1h|1h30m] [20k|15000] [challenge]",
        "/interview start candidate:@user [minutes] [tokens] [challenge]",
    )
    .replace(
        "/interview extend [@candidate] +10m  or  /interview extend [@candidate] +5k",
        "/interview extend candidate:@user [minutes] [tokens]",
    )
    .replace(
        "/interview config channel #channel | interviewers @user ... | timezone Europe/Berlin",
        "/interview config channel|interview_channel|role|timezone",
    )
)


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
    """A private answer: the follow-up of the defer, or the first response if none was sent."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=QUIET)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=QUIET)


def context(interaction: discord.Interaction[Any]) -> tuple[Workspace, Actor]:
    """What :meth:`InterviewCommands.interaction_check` resolved for this interaction."""
    return interaction.extras[WORKSPACE], interaction.extras[ACTOR]


class InterviewCommands(app_commands.Group):
    """``/interview start|extend|pause|resume|end|status|challenges|help|config ...``"""

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
            text = f"❌ {original}"
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
    ) -> None:
        """The same command logic as Slack and the console (core.dispatch)."""
        workspace, actor = context(interaction)
        reply = await run_command(
            self.service, workspace, actor, command, platform_data=platform_data
        )
        await answer(interaction, reply)

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
        if candidate.bot:
            raise InvalidInput("The candidate must be a person, not a bot.")
        workspace, _ = context(interaction)
        parent = self.access.interview_parent(workspace, interaction)
        command = Command(
            "start",
            candidate=str(candidate.id),
            seconds=minutes * 60 if minutes else None,
            tokens=tokens,
            challenge=challenge,
        )
        await self._dispatch(interaction, command, {"parent_channel": str(parent)})

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
        command = Command(
            "extend",
            candidate=str(candidate.id),
            seconds=minutes * 60 if minutes else None,
            tokens=tokens,
        )
        await self._dispatch(interaction, command)

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

    @config.command(name="timezone", description="The team's time zone (IANA name)")
    async def config_timezone(self, interaction: discord.Interaction[Any], timezone: str) -> None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(f"`{timezone}` is not a time zone like Europe/Berlin.") from None
        await self._configure(
            interaction, "timezone", timezone, f"Team time zone set to {timezone}."
        )
