"""The Discord adapter: an AutoShardedClient with the /interview group and persistent buttons."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
from aiohttp import web
from discord import app_commands
from pydantic import SecretStr

from adapters.discord import views
from adapters.discord.commands import FAILURE, InterviewCommands
from adapters.discord.platform import DiscordPlatform
from core.errors import DomainError, InvalidInput, StartupError
from core.models import Actor, Workspace
from core.service import InterviewService

log = logging.getLogger(__name__)

# How long stop() lets discord.py's connect loop end by itself before cancelling it (it never
# ends while a shard that could not connect at start-up waits to retry).
STOP_GRACE_S = 1.0


class _NoVoiceWarnings(logging.Filter):
    """Drops discord.Client's start-up warnings that PyNaCl / davey (voice) are missing: the bot
    uses no voice. Every other discord.py record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            isinstance(record.msg, str)
            and record.msg.endswith("is not installed, voice will NOT be supported")
        )


def _one_line(exc: BaseException) -> str:
    """An exception as one line (discord.py's form errors span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def quiet_voice_warnings() -> None:
    """Install the filter on discord.py's ``discord.client`` logger (once)."""
    client_log = logging.getLogger("discord.client")
    if not any(isinstance(f, _NoVoiceWarnings) for f in client_log.filters):
        client_log.addFilter(_NoVoiceWarnings())


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
        # Shards whose session is up on their current socket: set by READY / RESUMED, cleared
        # whenever discord.py drops the socket to reconnect (it dispatches shard_disconnect).
        self.live_shards: set[int] = set()

    async def setup_hook(self) -> None:
        # Buttons of counters posted before a restart keep working.
        self.add_view(views.ControlsView(self.adapter.on_button))
        self.tree.add_command(InterviewCommands(self.adapter))
        guild_ids = self.adapter.guild_ids
        if guild_ids:
            for guild_id in guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                try:
                    await self.tree.sync(guild=guild)
                except discord.HTTPException as exc:
                    raise StartupError(
                        f"Discord refused the /interview commands for guild {guild_id} "
                        f"(DISCORD_GUILD_IDS): {_one_line(exc)}: is the bot in that server, "
                        "invited with the applications.commands scope?"
                    ) from exc
        else:
            try:
                await self.tree.sync()
            except discord.HTTPException as exc:
                raise StartupError(
                    f"Discord refused the /interview commands: {_one_line(exc)}"
                ) from exc

    async def on_shard_connect(self, shard_id: int) -> None:
        self.live_shards.add(shard_id)

    async def on_shard_resumed(self, shard_id: int) -> None:
        self.live_shards.add(shard_id)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self.live_shards.discard(shard_id)

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
        quiet_voice_warnings()  # before the client: discord.Client warns in __init__
        self.client = InterviewBot(self, **(client_options or {}))
        self.platform = DiscordPlatform(
            self.client, self.on_button, edit_interval_s=edit_interval_s
        )
        self._connection: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Log in (REST: token, application, command sync), then connect the gateway in the
        background. Failures to log in raise :class:`StartupError` with one line and leave
        nothing running."""
        base = self.config.api_base.rstrip("/")
        # discord.py builds every URL from this class attribute (set before login).
        discord.http.Route.BASE = base
        try:
            await self.client.login(self.config.bot_token.get_secret_value())
        except BaseException as exc:
            await self.client.close()  # the HTTP session and its connector
            if isinstance(exc, StartupError):
                raise
            if isinstance(exc, discord.LoginFailure):
                raise StartupError(
                    "Discord rejected DISCORD_BOT_TOKEN (401 Unauthorized): check the bot token"
                ) from exc
            if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError):
                raise StartupError(
                    f"could not reach Discord at {base} (DISCORD_API_BASE): {_one_line(exc)}"
                ) from exc
            if isinstance(exc, discord.HTTPException):
                response = exc.response
                what = (
                    f"{response.method} {response.url.path}"
                    if isinstance(response, aiohttp.ClientResponse)
                    else "a start-up request"
                )
                raise StartupError(
                    f"Discord at {base} (DISCORD_API_BASE) refused {what}: {_one_line(exc)}"
                ) from exc
            raise
        self._connection = asyncio.create_task(self.client.connect(reconnect=True))
        self._connection.add_done_callback(self._connection_ended)

    def _connection_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # e.g. 4014: the Message Content Intent is not enabled
            log.error(
                "the Discord gateway connection ended: %s",
                exc,
                exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,
            )

    async def is_ready(self) -> bool:
        """Every shard's gateway connection is up now (not: was up once).

        ``client.is_ready()`` stays true from the first READY until ``close()``, even while the
        gateway is down and reconnects fail; a shard's socket (``ShardInfo.is_closed()``) and its
        session (READY / RESUMED on that socket, see :class:`InterviewBot`) are live.
        """
        client = self.client
        if client.is_closed() or not client.is_ready():
            return False
        if self._connection is None or self._connection.done():
            return False
        shards = client.shards
        expected = set(client.shard_ids or range(client.shard_count or 0))
        if not expected or set(shards) != expected:
            return False
        return all(
            not info.is_closed() and shard_id in client.live_shards
            for shard_id, info in shards.items()
        )

    async def wait_ready(self) -> None:
        await self.client.wait_until_ready()

    async def stop(self) -> None:
        await self.client.close()
        task = self._connection
        if task is not None and not task.done():
            # A shard that never connected retries every 5 s and never sees the close.
            await asyncio.wait({task}, timeout=STOP_GRACE_S)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

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
