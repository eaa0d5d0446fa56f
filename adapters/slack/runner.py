"""The Slack adapter: a Bolt AsyncApp over HTTP (signed requests) or Socket Mode."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import SecretStr
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.listeners import register_listeners
from adapters.slack.outbox import SlackOutbox
from adapters.slack.platform import SlackPlatform
from core.models import Actor, Status, Workspace
from core.service import InterviewService

log = logging.getLogger(__name__)

ADMIN_CACHE_S = 600.0


@dataclass(frozen=True)
class SlackConfig:
    """What the Slack adapter needs from the bot's settings."""

    bot_token: SecretStr
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None  # Socket Mode when set
    api_url: str = "https://slack.com/api/"
    interviewers: frozenset[str] = frozenset()


class SlackAdapter:
    """Connects one Slack app (one bot token) to the interview service."""

    def __init__(
        self,
        config: SlackConfig,
        service: InterviewService,
        *,
        outbox_options: dict[str, Any] | None = None,
        tick_s: float = 15.0,
        flush_interval_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.service = service
        self.client = AsyncWebClient(
            token=config.bot_token.get_secret_value(), base_url=config.api_url
        )
        self.outbox = SlackOutbox(self.client, **(outbox_options or {}))
        self.platform = SlackPlatform(
            self.outbox, service.challenges, flush_interval_s=flush_interval_s
        )
        socket_mode = config.app_token is not None
        if not socket_mode and config.signing_secret is None:
            raise ValueError(
                "set SLACK_SIGNING_SECRET (HTTP mode) or SLACK_APP_TOKEN (Socket Mode)"
            )
        self.app = AsyncApp(
            client=self.client,
            signing_secret=(
                config.signing_secret.get_secret_value() if config.signing_secret else None
            ),
            request_verification_enabled=not socket_mode,
            process_before_response=False,
        )
        self._admins: dict[tuple[str, str], tuple[float, bool]] = {}
        self._socket: AsyncSocketModeHandler | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._tick_s = tick_s
        self._monotonic = monotonic
        self._last_tick: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = False
        register_listeners(self)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        identity = await self.client.auth_test()  # fails fast on a wrong token or URL
        self.platform.team_id = str(identity.get("team_id") or "") or None
        if self.config.app_token is not None:
            self._socket = AsyncSocketModeHandler(
                self.app, self.config.app_token.get_secret_value()
            )
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
            log.info("Slack: Socket Mode connected")
        else:
            log.info("Slack: HTTP mode at POST /slack/events")
        self._ticker = asyncio.create_task(self._tick_loop())
        self._ready = True

    async def is_ready(self) -> bool:
        return self._ready

    async def stop(self) -> None:
        self._ready = False
        if self._ticker is not None:
            self._ticker.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
        await self.outbox.close()

    async def handle_http(self, request: web.Request) -> web.StreamResponse:
        """Slash commands, interactivity and events, verified by Bolt's signature check."""
        response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    def spawn(self, coro: Any) -> None:
        """Run slow work after the 3-second acknowledgement."""
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for spawned work and queued edits (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.outbox.flush()

    # ------------------------------------------------------------------ who is who

    async def workspace(self, team_id: str) -> Workspace:
        return await self.service.store.get_or_create_workspace("slack", team_id)

    async def actor(self, workspace: Workspace, user_id: str) -> Actor:
        """Interviewers: SLACK_INTERVIEWERS, the configured list, workspace admins and owners."""
        configured = set(workspace.settings.get("interviewers", [])) | self.config.interviewers
        if user_id in configured:
            return Actor(user_id, is_interviewer=True)
        return Actor(user_id, is_interviewer=await self._is_admin(workspace.external_id, user_id))

    async def _is_admin(self, team_id: str, user_id: str) -> bool:
        key = (team_id, user_id)
        cached = self._admins.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            info = await self.outbox.call("users.info", user=user_id)
            user = info.get("user", {})
            admin = bool(
                user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner")
            )
        except Exception:
            log.warning("users.info failed for %s; treating as non-admin", user_id)
            return False
        self._admins[key] = (time.monotonic() + ADMIN_CACHE_S, admin)
        return admin

    # ------------------------------------------------------------------ counter refreshes

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            try:
                await self.refresh_counters()
            except Exception:
                log.exception("refreshing Slack counters failed")

    async def refresh_counters(self) -> None:
        """Queue low-priority counter edits: every minute, every 15 s in the last 5 minutes.

        The counter shows an absolute "ends at" time too, so a delayed refresh never
        misleads; edits are coalesced by the outbox, so many interviews stay within limits.
        """
        now = self._monotonic()
        for interview in await self.service.store.list_open():
            if interview.platform != "slack" or interview.status is not Status.ACTIVE:
                continue
            view = await self.service.counter(interview)
            every = 15.0 if view.seconds_left <= 300 else 60.0
            if now - self._last_tick.get(interview.id, 0.0) >= every:
                self._last_tick[interview.id] = now
                await self.platform.show_counter(interview, view, urgent=False)
