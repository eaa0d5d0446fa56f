"""The Discord adapter: an AutoShardedClient with the /interview group and persistent buttons.

Several processes may run the same bot: each owns some shards (``DISCORD_SHARD_COUNT``,
``DISCORD_SHARD_IDS``), and during a rolling restart two may see the same event. The
engine makes that safe (a message is stored once by its id; ticks and closings are jobs
claimed in the database); an interaction is handled by whichever process acknowledges it
first (Discord refuses the second acknowledgement with 40060).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
import yarl
from aiohttp import web
from discord import app_commands
from pydantic import SecretStr

from adapters.discord import views
from adapters.discord.access import Access
from adapters.discord.commands import FAILURE, InterviewCommands, InterviewTree, answer
from adapters.discord.inflight import InFlight
from adapters.discord.platform import DiscordPlatform
from core import texts
from core.errors import DomainError, NotFound, StartupError
from core.lifecycle import controls
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
    shard_count: int | None = None  # all shards of the bot (None: as Discord recommends)
    shard_ids: tuple[int, ...] | None = None  # the shards this process owns (None: all)

    def sharding(self) -> dict[str, Any]:
        """``AutoShardedClient`` options for the shards this process owns."""
        options: dict[str, Any] = {}
        if self.shard_count is not None:
            options["shard_count"] = self.shard_count
        if self.shard_ids is not None:
            options["shard_ids"] = list(self.shard_ids)
        return options


class InterviewBot(discord.AutoShardedClient):
    """The discord.py client; AutoSharded, so one process can own several shards (or some)."""

    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: needed to read candidates' messages
        # No message cache: nothing here reads it (messages arrive as events, replies are
        # edited through the objects their sends returned); it held the last 1,000 messages,
        # candidates' text included, for nothing.
        super().__init__(intents=intents, max_messages=None, **options)
        self.adapter = adapter
        self.tree: app_commands.CommandTree[Any] = InterviewTree(self)
        # Shards whose session is up on their current socket: set by READY / RESUMED, cleared
        # whenever discord.py drops the socket to reconnect (it dispatches shard_disconnect).
        self.live_shards: set[int] = set()

    async def setup_hook(self) -> None:
        # Buttons of counters posted before a restart (or by another process) keep working.
        adapter = self.adapter
        self.add_view(views.ControlsView(adapter.on_button, adapter.controls))
        self.tree.add_command(InterviewCommands(adapter.service, adapter.access, adapter.inflight))
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
        self.controls = controls(service.config)
        self.inflight = InFlight()
        self.access = Access(
            service,
            interviewer_role=config.interviewer_role,
            interview_channel=config.interview_channel,
        )
        quiet_voice_warnings()  # before the client: discord.Client warns in __init__
        self.client = InterviewBot(self, **config.sharding(), **(client_options or {}))
        self.platform = DiscordPlatform(
            self.client, self.on_button, self.controls, edit_interval_s=edit_interval_s
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
            await self._use_gateway_of_the_api()
        except BaseException as exc:
            await self.client.close()  # the HTTP session and its connector
            if isinstance(exc, StartupError):
                raise
            if isinstance(exc, discord.GatewayNotFound) and exc.__cause__ is not None:
                exc = exc.__cause__  # the HTTPException of GET /gateway/bot
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

    async def _use_gateway_of_the_api(self) -> None:
        """Connect to the gateway ``GET /gateway/bot`` names, also where discord.py would
        not ask: with a fixed ``shard_count`` it skips the request, and every re-identify
        (after an invalid session, or a shard that never connected) goes to the class
        attribute ``DiscordWebSocket.DEFAULT_GATEWAY`` (``wss://gateway.discord.gg/``),
        whatever ``DISCORD_API_BASE`` says. Like ``Route.BASE`` it is process-wide."""
        _, url, _ = await self.client.http.get_bot_gateway()
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)

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
        """Every shard this process owns has its gateway connection up now (not: was up
        once). Shards other processes own (``DISCORD_SHARD_IDS``) are theirs to report.

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
        # Handlers first, while Discord and the engine are still there to record the end
        # (e.g. a reply cut short), then once more for any that began meanwhile.
        await self.inflight.end()
        await self.client.close()
        await self.inflight.end()
        task = self._connection
        if task is not None and not task.done():
            # A shard that never connected retries every 5 s and never sees the close.
            await asyncio.wait({task}, timeout=STOP_GRACE_S)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def handle_http(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text="Discord talks to the bot over the gateway")

    # ------------------------------------------------------------------ events

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or not isinstance(message.channel, discord.Thread):
            return
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return  # a system message (a pin, a member added): nobody wrote anything
        self.inflight.message()
        # Every process that sees the event may pass it on: the turn is stored once by its
        # message id, so it is answered and charged once.
        try:
            await self.service.turns.handle_message(
                "discord",
                str(message.channel.id),
                str(message.author.id),
                str(message.id),
                message.content,
                attachments=len(message.attachments),  # uploads (never sent to the model)
            )
        except Exception:  # e.g. the database is unreachable: say so instead of staying silent
            log.exception("could not take the message %s", message.id)
            try:
                await message.channel.send(
                    texts.MESSAGE_NOT_SAVED, allowed_mentions=discord.AllowedMentions.none()
                )
            except Exception:
                log.warning("could not say that the message was not saved", exc_info=True)

    async def on_button(self, interaction: discord.Interaction[Any], name: str) -> None:
        """A click on a counter's button (``name``: an engine control): interviewers only;
        anyone else is refused privately."""
        self.inflight.interaction()
        try:
            await interaction.response.defer(ephemeral=True, thinking=False)
        except discord.HTTPException as exc:
            # Expired (10062), or another process acknowledged it first (40060): theirs.
            log.info("button %s not answered: %s", name, exc)
            return
        try:
            workspace, actor = await self.access.identify(interaction)
            interview = await self.service.queries.by_room("discord", str(interaction.channel_id))
            if interview is None or interview.workspace_id != workspace.id:
                raise NotFound("This interview no longer exists.")
            await self.service.lifecycle.control(actor, interview.id, name)
            return  # done: the counter shows it, nothing to say
        except DomainError as exc:
            text = f"❌ {exc}"
        except Exception:
            log.exception("button %s failed", name)
            text = FAILURE
        try:
            await answer(interaction, text)
        except discord.HTTPException:
            log.warning("could not answer the click on %s", name, exc_info=True)
