"""The ``/interview`` command group with typed options (a discord.py app-command cog)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import discord
from discord import app_commands

from core.commands import HELP_TEXT, Command
from core.dispatch import run_command
from core.errors import DomainError, InvalidInput, NotAuthorized
from core.models import Actor, Workspace

if TYPE_CHECKING:
    from adapters.discord.runner import DiscordAdapter

log = logging.getLogger(__name__)

Minutes = app_commands.Range[int, 1, 1440]
Tokens = app_commands.Range[int, 1, 10_000_000]
FAILURE = "Something went wrong on our side; nothing was changed. Please try again."

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


class InterviewCommands(app_commands.Group):
    """``/interview start|extend|pause|resume|end|status|challenges|help|config ...``"""

    config = app_commands.Group(name="config", description="Configure Interview Buddy here")

    def __init__(self, adapter: DiscordAdapter) -> None:
        super().__init__(name="interview", description="AI-assisted technical interviews")
        self.adapter = adapter

    async def _run(
        self,
        interaction: discord.Interaction[Any],
        work: Callable[[Workspace, Actor], Awaitable[str]],
        *,
        interviewers_only: bool = True,
    ) -> None:
        """Defer (ephemeral) within Discord's 3 s, do the work, answer privately."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            workspace, actor = await self.adapter.identify(interaction)
            if interviewers_only and not actor.is_interviewer:
                raise NotAuthorized(
                    "Only interviewers can do that: members with Manage Server or the "
                    "interviewer role."
                )
            reply = await work(workspace, actor)
        except DomainError as exc:
            reply = f"❌ {exc}"
        except Exception:
            log.exception(
                "/interview %s failed", interaction.command.name if interaction.command else "?"
            )
            reply = FAILURE
        await interaction.followup.send(
            reply, ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    async def _dispatch(
        self,
        workspace: Workspace,
        actor: Actor,
        command: Command,
        platform_data: dict[str, Any] | None = None,
    ) -> str:
        """The same command logic as Slack and the console (core.dispatch)."""
        return await run_command(
            self.adapter.service, workspace, actor, command, platform_data=platform_data
        )

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
        async def work(workspace: Workspace, actor: Actor) -> str:
            if candidate.bot:
                raise InvalidInput("The candidate must be a person, not a bot.")
            parent = await self.adapter.interview_parent(workspace, interaction)
            command = Command(
                "start",
                candidate=str(candidate.id),
                seconds=minutes * 60 if minutes else None,
                tokens=tokens,
                challenge=challenge,
            )
            return await self._dispatch(workspace, actor, command, {"parent_channel": str(parent)})

        await self._run(interaction, work)

    @start.autocomplete("challenge")
    async def challenge_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        workspace = await self.adapter.workspace(interaction)
        found = await self.adapter.service.challenges.list(workspace.id)
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
        await self._run(interaction, lambda ws, actor: self._dispatch(ws, actor, command))

    @app_commands.command(name="pause", description="Stop the clock")
    async def pause(self, interaction: discord.Interaction[Any], candidate: discord.User) -> None:
        await self._lifecycle(interaction, candidate, "pause")

    @app_commands.command(name="resume", description="Restart the clock")
    async def resume(self, interaction: discord.Interaction[Any], candidate: discord.User) -> None:
        await self._lifecycle(interaction, candidate, "resume")

    @app_commands.command(name="end", description="End an interview now")
    async def end(self, interaction: discord.Interaction[Any], candidate: discord.User) -> None:
        await self._lifecycle(interaction, candidate, "end")

    async def _lifecycle(
        self, interaction: discord.Interaction[Any], candidate: discord.User, action: str
    ) -> None:
        command = Command(action, candidate=str(candidate.id))
        await self._run(interaction, lambda ws, actor: self._dispatch(ws, actor, command))

    @app_commands.command(name="status", description="Your running interviews")
    async def status(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(interaction, lambda ws, actor: self._dispatch(ws, actor, Command("status")))

    @app_commands.command(name="challenges", description="The challenge library")
    async def challenges(self, interaction: discord.Interaction[Any]) -> None:
        await self._run(
            interaction,
            lambda ws, actor: self._dispatch(ws, actor, Command("challenges")),
            interviewers_only=False,
        )

    @app_commands.command(name="help", description="How to use Interview Buddy")
    async def help(self, interaction: discord.Interaction[Any]) -> None:
        async def work(workspace: Workspace, actor: Actor) -> str:
            return DISCORD_HELP

        await self._run(interaction, work, interviewers_only=False)

    # ------------------------------------------------------------------ config

    async def _configure(
        self, interaction: discord.Interaction[Any], key: str, value: str, reply: str
    ) -> None:
        async def work(workspace: Workspace, actor: Actor) -> str:
            workspace.settings = {**workspace.settings, key: value}
            await self.adapter.service.store.save_workspace(workspace)
            return reply

        await self._run(interaction, work)

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
            await interaction.response.send_message(
                f"❌ `{timezone}` is not a time zone like Europe/Berlin.", ephemeral=True
            )
            return
        await self._configure(
            interaction, "timezone", timezone, f"Team time zone set to {timezone}."
        )
