"""Who is who on Discord: the workspace of a guild, interviewers, where threads open.

Shared by the slash commands and the counter buttons (both import this module; neither
imports the other or the runner).
"""

from __future__ import annotations

import logging
from typing import Any

import discord

from core.errors import InvalidInput
from core.models import Actor, Workspace
from core.service import InterviewService

NOT_IN_A_SERVER = "Use Interview Buddy inside a server, not in DMs."

log = logging.getLogger(__name__)


def for_this_app(interaction: discord.Interaction[Any]) -> bool:
    """Whether the interaction is addressed to this bot's application. discord.py hands the
    command tree and the persistent views every INTERACTION_CREATE of the gateway, whatever
    its ``application_id``; one meant for another application is dropped here, unanswered."""
    own = interaction.client.application_id
    if own is not None and interaction.application_id == own:
        return True
    log.warning(
        "ignored an interaction for application %s (this bot is %s)",
        interaction.application_id,
        own,
    )
    return False


class Access:
    """Resolves interactions to the engine's workspace and actor."""

    def __init__(
        self,
        service: InterviewService,
        *,
        interviewer_role: str | None = None,
        interview_channel: str | None = None,
    ) -> None:
        self.service = service
        self.interviewer_role = interviewer_role  # DISCORD_INTERVIEWER_ROLE: id or name
        self.interview_channel = interview_channel  # DISCORD_INTERVIEW_CHANNEL: id or name

    async def workspace(self, interaction: discord.Interaction[Any]) -> Workspace:
        if interaction.guild_id is None:
            raise InvalidInput(NOT_IN_A_SERVER)
        return await self.service.queries.workspace("discord", str(interaction.guild_id))

    async def identify(self, interaction: discord.Interaction[Any]) -> tuple[Workspace, Actor]:
        workspace = await self.workspace(interaction)
        user = interaction.user
        return workspace, Actor(str(user.id), self.is_interviewer(workspace, user))

    def is_interviewer(self, workspace: Workspace, user: discord.User | discord.Member) -> bool:
        """Listed in the settings, Manage Server, or the interviewer role (settings or
        DISCORD_INTERVIEWER_ROLE, by id or name)."""
        if str(user.id) in workspace.settings.get("interviewers", []):
            return True
        if not isinstance(user, discord.Member):
            return False
        if user.guild_permissions.manage_guild:
            return True
        wanted = {workspace.settings.get("interviewer_role"), self.interviewer_role}
        wanted.discard(None)
        return any(str(role.id) in wanted or role.name in wanted for role in user.roles)

    def interview_parent(self, workspace: Workspace, interaction: discord.Interaction[Any]) -> int:
        """Where private threads open: the configured channel, DISCORD_INTERVIEW_CHANNEL, or
        the channel the command was run in."""
        guild = interaction.guild
        for wanted in (workspace.settings.get("interview_channel"), self.interview_channel):
            if not wanted:
                continue
            if str(wanted).isdigit():
                return int(wanted)
            if guild is not None:
                for text_channel in guild.text_channels:
                    if text_channel.name == str(wanted).lstrip("#"):
                        return text_channel.id
        channel = interaction.channel
        if isinstance(channel, discord.TextChannel):
            return channel.id
        if isinstance(channel, discord.Thread) and channel.parent_id:
            return channel.parent_id
        raise InvalidInput(
            "Run this in a text channel, or set one with `/interview config interview_channel`."
        )
