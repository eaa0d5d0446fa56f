"""The Slack adapter: a Bolt AsyncApp over HTTP (signed requests) or Socket Mode."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import web
from pydantic import SecretStr
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack.listeners import register
from adapters.slack.outbox import SlackOutbox
from adapters.slack.people import People
from adapters.slack.platform import SlackPlatform
from core.errors import StartupError
from core.lifecycle import controls
from core.models import Challenge, Interview
from core.ports import RateLimiter
from core.service import InterviewService

log = logging.getLogger(__name__)

TOKEN_REJECTED = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
        "missing_scope",
        "no_permission",
        "ekm_access_denied",
    }
)
"""Answers with which Slack refuses a token (``auth.test``, ``apps.connections.open``)."""

BOT_TOKEN_HINT = "use the Bot User OAuth Token (xoxb-…) of the installed app"
APP_TOKEN_HINT = "use an app-level token (xapp-…) with connections:write"
SOCKET_MODE_ONLY = (
    "Slack uses Socket Mode here: requests to /slack/events over HTTP are not accepted."
)


@dataclass(frozen=True)
class SlackConfig:
    """What the Slack adapter needs from the bot's settings."""

    bot_token: SecretStr
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None  # Socket Mode when set (and not blank)
    api_url: str = "https://slack.com/api/"
    interviewers: frozenset[str] = frozenset()


class SlackAdapter:
    """Connects one Slack app (one bot token) to the interview service.

    HTTP mode verifies every request with the signing secret (required). In Socket Mode
    Slack delivers everything over the socket, so ``/slack/events`` answers 404 and nothing
    sent there reaches Bolt.

    ``rate_limiter`` holds Slack's rate budgets; the bot injects one shared by every process
    (through the database). Without one, this process counts for itself.
    """

    def __init__(
        self,
        config: SlackConfig,
        service: InterviewService,
        *,
        rate_limiter: RateLimiter | None = None,
        outbox_options: dict[str, Any] | None = None,
        flush_interval_s: float = 1.0,
        socket_ping_interval_s: float = 10.0,
        socket_connect_timeout_s: float = 30.0,
    ) -> None:
        app_token = config.app_token.get_secret_value() if config.app_token else ""
        secret = config.signing_secret.get_secret_value() if config.signing_secret else ""
        self.socket_mode = bool(app_token.strip())
        if not self.socket_mode and not secret.strip():
            raise ValueError(
                "SLACK_SIGNING_SECRET is missing or empty: HTTP mode verifies every request "
                "with it (or set SLACK_APP_TOKEN for Socket Mode)"
            )
        self.config = config
        self.service = service
        self._app_token = app_token
        # Bolt builds its own client from `token`. Handing it `client=` instead logs "As you
        # gave `client` as well, `token` will be unused." whenever SLACK_BOT_TOKEN is in the
        # environment: AsyncApp.__init__ does `token = token or os.environ.get(...)`, then
        # warns if a client was given and token is not None.
        self.app = AsyncApp(
            token=config.bot_token.get_secret_value(),
            # A str, never None: None would make Bolt read SLACK_SIGNING_SECRET itself.
            signing_secret=secret,
            # On in both modes: Bolt skips the check only for mode="socket_mode" requests
            # (the socket's envelopes); anything arriving over HTTP is verified.
            request_verification_enabled=True,
            process_before_response=False,
        )
        self.client = self.app.client
        self.client.base_url = (
            config.api_url if config.api_url.endswith("/") else (config.api_url + "/")
        )  # per-request clients copy it (AsyncApp._init_context)
        self.outbox = SlackOutbox(self.client, limiter=rate_limiter, **(outbox_options or {}))
        self.platform = SlackPlatform(
            self.outbox,
            self._challenge_of,
            controls(service.config),
            flush_interval_s=flush_interval_s,
            clock=service.ctx.clock.now,
        )
        self.people = People(service.queries, self.outbox, config.interviewers)
        self._socket: AsyncSocketModeHandler | None = None
        self._ping_interval_s = socket_ping_interval_s
        self._connect_timeout_s = socket_connect_timeout_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False
        register(
            self.app,
            service=service,
            outbox=self.outbox,
            people=self.people,
            spawn=self.spawn,
        )

    async def _challenge_of(self, interview: Interview) -> Challenge | None:
        """The interview's challenge as the root message shows it (from the engine's queries)."""
        for challenge in await self.service.queries.challenges(interview.workspace_id):
            if challenge.slug == interview.challenge_slug:
                return challenge
        return None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Check both tokens, connect (Socket Mode).

        Any failure is a one-line :class:`StartupError`, and nothing is left running.
        """
        try:
            await self._start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.stop()
            raise

    async def _start(self) -> None:
        if self.client.session is None:
            # Without a session of its own, slack_sdk opens (and closes) an aiohttp session
            # for every Web API call: a new TCP and TLS connection to Slack each time. Bolt's
            # per-request clients share this one (AsyncApp._init_context copies it).
            self.client.session = aiohttp.ClientSession()
        identity = await self._ask_slack(
            "auth.test", "SLACK_BOT_TOKEN", BOT_TOKEN_HINT, self.client.auth_test()
        )
        team_id = str(identity.get("team_id") or "") or None
        # The rate budgets are the workspace's: every process with this token shares them.
        self.platform.team_id = self.outbox.team_id = team_id
        if self.socket_mode:
            # SocketModeClient.connect() retries any failure forever (sleeping ping_interval),
            # a refused app token included: ask for the URL once ourselves first.
            opened = await self._ask_slack(
                "apps.connections.open",
                "SLACK_APP_TOKEN",
                APP_TOKEN_HINT,
                self.client.apps_connections_open(app_token=self._app_token),
            )
            await self._connect_socket(str(opened["url"]))
            log.info("Slack: Socket Mode connected")
        else:
            log.info("Slack: HTTP mode at POST /slack/events")
        self._started = True

    async def _connect_socket(self, url: str) -> None:
        self._socket = AsyncSocketModeHandler(
            self.app, self._app_token, ping_interval=self._ping_interval_s
        )
        # connect() asks apps.connections.open for a URL only while wss_uri is None, so the
        # first connection uses the one we were just given (reconnects fetch fresh ones).
        self._socket.client.wss_uri = url
        try:
            await asyncio.wait_for(
                self._socket.connect_async(),  # type: ignore[no-untyped-call]
                self._connect_timeout_s,
            )
        except TimeoutError as exc:
            raise StartupError(
                f"could not open Slack's Socket Mode connection to {urlsplit(url).hostname} "
                f"within {self._connect_timeout_s:g} s (apps.connections.open worked; the "
                "WebSocket did not connect)"
            ) from exc

    async def _ask_slack(
        self, method: str, setting: str, hint: str, call: Awaitable[AsyncSlackResponse]
    ) -> AsyncSlackResponse:
        """One Web API call at start-up; a refusal or an unreachable Slack is a StartupError."""
        where = _without_credentials(self.config.api_url)
        try:
            return await call
        except SlackApiError as exc:
            error = _api_error(exc)
            if error in TOKEN_REJECTED:
                raise StartupError(f"Slack rejected {setting} ({error}): {hint}") from exc
            raise StartupError(
                f"Slack at {where} (SLACK_API_URL) answered {method} with {error}"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            raise StartupError(
                f"could not reach Slack at {where} (SLACK_API_URL): {_reason(exc)}"
            ) from exc

    async def is_ready(self) -> bool:
        """HTTP mode: started. Socket Mode: the socket is connected right now
        (``SocketModeClient.is_connected``: open session, not stale, pings answered)."""
        if not self._started:
            return False
        if self._socket is None:
            return True
        return await self._socket.client.is_connected()

    async def stop(self) -> None:
        """Stop everything (idempotent): spawned work, socket, outbox."""
        self._started = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_socket()
        await self.outbox.close()
        session, self.client.session = self.client.session, None
        if session is not None:
            await session.close()

    async def _close_socket(self) -> None:
        handler, self._socket = self._socket, None
        if handler is None:
            return
        await handler.close_async()  # type: ignore[no-untyped-call]
        # close() cancels the client's loops without waiting for them; wait here.
        client = handler.client
        loops = (client.message_processor, client.current_session_monitor, client.message_receiver)
        await asyncio.gather(*(f for f in loops if f is not None), return_exceptions=True)

    async def handle_http(self, request: web.Request) -> web.StreamResponse:
        """Slash commands, interactivity and events, verified by Bolt's signature check.

        In Socket Mode Slack sends nothing over HTTP: refuse before Bolt, whatever the headers.
        """
        if self.socket_mode:
            return web.Response(status=404, text=SOCKET_MODE_ONLY)
        if not await self.is_ready():
            return web.Response(status=503, text="starting")
        response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run slow work after the 3-second acknowledgement."""
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for spawned work and queued edits (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.outbox.flush()


def _api_error(exc: SlackApiError) -> str:
    """Slack's ``error`` code, or the HTTP status when the answer is not Slack's JSON."""
    data = exc.response.data
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return f"HTTP {exc.response.status_code}"


def _reason(exc: BaseException) -> str:
    """A short, one-line reason for a connection failure."""
    cause: BaseException = exc
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
    if isinstance(cause, socket.gaierror):
        return f"DNS lookup failed ({cause.strerror or cause})"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.InvalidURL):
        return "not a valid URL"
    lines = str(cause).strip().splitlines()
    return lines[0][:200] if lines else type(cause).__name__


def _without_credentials(url: str) -> str:
    """The URL without ``user:password@`` (proxies), for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
