"""The Discord adapter: an AutoShardedClient with the /interview group and persistent buttons."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import discord
from aiohttp import web
from discord import app_commands
from pydantic import SecretStr

from adapters.discord import views
from adapters.discord.commands import FAILURE, InterviewCommands
from adapters.discord.platform import DiscordPlatform
from core.errors import DomainError, InvalidInput
from core.models import Actor, Workspace
from core.service import InterviewService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscordConfig:
    """What the Discord adapter needs from the bot's settings."""

    bot_token: SecretStr
    api_base: str = "https://discord.com/api/v10"
    guild_ids: tuple[int, ...] = ()
    interview_channel: str | None = None  # id or name
    interviewer_role: str | None = None  # id or name


class InterviewBot(discord.AutoShardedClient):
    """The discord.py client; AutoSharded so the gateway URL comes from GET /gateway/bot."""

    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: needed to read candidates' messages
        super().__init__(intents=intents, **options)
        self.adapter = adapter
        self.tree = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        # Buttons of counters posted before a restart keep working.
        self.add_view(views.ControlsView(self.adapter.on_button))
        self.tree.add_command(InterviewCommands(self.adapter))
        guild_ids = self.adapter.guild_ids
        if guild_ids:
            for guild_id in guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        await self.adapter.on_message(message)


class DiscordAdapter:
    """Connects one Discord bot to the interview service."""

    def __init__(
        self,
        config: DiscordConfig,
        service: InterviewService,
        *,
        edit_interval_s: float = 1.0,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.service = service
        self.guild_ids = list(config.guild_ids)
        self.client = InterviewBot(self, **(client_options or {}))
        self.platform = DiscordPlatform(
            self.client, self.on_button, edit_interval_s=edit_interval_s
        )
        self._connection: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        # discord.py builds every URL from this class attribute (set before login).
        discord.http.Route.BASE = self.config.api_base.rstrip("/")
        await self.client.login(self.config.bot_token.get_secret_value())
        self._connection = asyncio.create_task(self.client.connect(reconnect=True))

    async def is_ready(self) -> bool:
        return self.client.is_ready()

    async def wait_ready(self) -> None:
        await self.client.wait_until_ready()

    async def stop(self) -> None:
        await self.client.close()
        if self._connection is not None:
            await asyncio.gather(self._connection, return_exceptions=True)

    async def handle_http(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text="Discord talks to the bot over the gateway")

    # ------------------------------------------------------------------ who is who

    async def workspace(self, interaction: discord.Interaction[Any]) -> Workspace:
        if interaction.guild_id is None:
            raise InvalidInput("Use Interview Buddy inside a server, not in DMs.")
        return await self.service.store.get_or_create_workspace(
            "discord", str(interaction.guild_id)
        )

    async def identify(self, interaction: discord.Interaction[Any]) -> tuple[Workspace, Actor]:
        workspace = await self.workspace(interaction)
        return workspace, Actor(
            str(interaction.user.id), self.is_interviewer(workspace, interaction.user)
        )

    def is_interviewer(self, workspace: Workspace, user: discord.User | discord.Member) -> bool:
        """Manage Server, the interviewer role (settings or DISCORD_INTERVIEWER_ROLE)."""
        if str(user.id) in workspace.settings.get("interviewers", []):
            return True
        if not isinstance(user, discord.Member):
            return False
        if user.guild_permissions.manage_guild:
            return True
        wanted = {
            workspace.settings.get("interviewer_role"),
            self.config.interviewer_role,
        }
        wanted.discard(None)
        return any(str(role.id) in wanted or role.name in wanted for role in user.roles)

    async def interview_parent(
        self, workspace: Workspace, interaction: discord.Interaction[Any]
    ) -> int:
        """Where private threads open: configured channel, DISCORD_INTERVIEW_CHANNEL, or here."""
        guild = interaction.guild
        for wanted in (
            workspace.settings.get("interview_channel"),
            self.config.interview_channel,
        ):
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

    # ------------------------------------------------------------------ events

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or not isinstance(message.channel, discord.Thread):
            return
        await self.service.handle_message(
            "discord",
            str(message.channel.id),
            str(message.author.id),
            str(message.id),
            message.content,
        )

    async def on_button(self, interaction: discord.Interaction[Any], custom_id: str) -> None:
        """A click on a counter's button: interviewers only; anyone else is refused privately."""
        await interaction.response.defer(ephemeral=True, thinking=False)
        service = self.service
        try:
            workspace, actor = await self.identify(interaction)
            interview = await service.store.find_by_room("discord", str(interaction.channel_id))
            if interview is None or interview.workspace_id != workspace.id:
                raise DomainError("This interview no longer exists.")
            if custom_id == views.EXTEND_TIME:
                await service.extend(actor, interview.id, seconds=600)
            elif custom_id == views.EXTEND_TOKENS:
                await service.extend(actor, interview.id, tokens=5000)
            elif custom_id == views.PAUSE:
                await service.pause(actor, interview.id)
            elif custom_id == views.RESUME:
                await service.resume(actor, interview.id)
            elif custom_id == views.END:
                await service.end(actor, interview.id)
            else:
                raise DomainError("Unknown button.")
        except DomainError as exc:
            await interaction.followup.send(f"❌ {exc}", ephemeral=True)
        except Exception:
            log.exception("button %s failed", custom_id)
            await interaction.followup.send(FAILURE, ephemeral=True)
