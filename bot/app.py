"""Composition root: builds the store, model, engine and adapters from settings."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from contextlib import suppress
from typing import Protocol

from aiohttp import web
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from adapters.discord.runner import DiscordAdapter, DiscordConfig
from adapters.slack.runner import SlackAdapter, SlackConfig
from bot.http import build_http_app
from bot.settings import Settings
from core.clock import Clock, SystemClock
from core.llm import OpenAIChatModel
from core.offline_model import OfflineChatModel
from core.ports import ChatModel, Platform
from core.service import EngineConfig, InterviewService
from storage.migrate import upgrade
from storage.sql_store import SqlStore, create_store

log = logging.getLogger(__name__)


class RunningAdapter(Protocol):
    """A platform connection the bot starts and stops."""

    @property
    def platform(self) -> Platform: ...

    async def start(self) -> None: ...

    async def is_ready(self) -> bool:
        """The live connection state (not a flag set once at start-up)."""
        ...

    async def stop(self) -> None: ...

    async def handle_http(self, request: web.Request) -> web.StreamResponse:
        """Requests to ``/{platform}/events`` (Slack over HTTP); others answer 404."""
        ...


AdapterFactory = Callable[[InterviewService], RunningAdapter]


def build_model(settings: Settings) -> ChatModel:
    """The OpenAI-compatible gateway when configured, else the labelled offline model."""
    if not settings.uses_real_model:
        return OfflineChatModel(delay_s=0.02)
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAIChatModel.from_settings(
        key,
        settings.openai_base_url,
        timeout_s=settings.llm_timeout,
        max_retries=settings.llm_max_retries,
        token_limit_param=settings.llm_token_param,
    )


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        model=settings.llm_model,
        time_limit_s=settings.default_time_limit,
        token_budget=settings.default_token_budget,
        challenge_slug=settings.default_challenge,
    )


async def open_store(settings: Settings) -> SqlStore:
    """Apply migrations, then connect."""
    await upgrade(settings.database_url)
    return create_store(settings.database_url)


async def wait_for_store(settings: Settings, attempts: int = 30) -> SqlStore:
    """Open the store, retrying with backoff while the database is still starting."""
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, max=10),
        retry=retry_if_exception_type(OSError),
        before_sleep=lambda state: log.warning(
            "database not reachable yet (attempt %d); retrying", state.attempt_number
        ),
        reraise=True,
    ):
        with attempt:
            return await open_store(settings)
    raise AssertionError("unreachable")


def build_service(
    settings: Settings,
    store: SqlStore,
    platforms: dict[str, Platform],
    *,
    model: ChatModel | None = None,
    clock: Clock | None = None,
) -> InterviewService:
    return InterviewService(
        store,
        model or build_model(settings),
        clock or SystemClock(),
        platforms,
        engine_config(settings),
    )


def slack_config(settings: Settings) -> SlackConfig:
    assert settings.slack_bot_token is not None
    return SlackConfig(
        bot_token=settings.slack_bot_token,
        signing_secret=settings.slack_signing_secret,
        app_token=settings.slack_app_token,
        api_url=settings.slack_api_url,
        interviewers=frozenset(
            u.strip() for u in settings.slack_interviewers.split(",") if u.strip()
        ),
    )


def discord_config(settings: Settings) -> DiscordConfig:
    assert settings.discord_bot_token is not None
    return DiscordConfig(
        bot_token=settings.discord_bot_token,
        api_base=settings.discord_api_base,
        guild_ids=tuple(
            int(g) for g in settings.discord_guild_ids.replace(" ", "").split(",") if g
        ),
        interview_channel=settings.discord_interview_channel,
        interviewer_role=settings.discord_interviewer_role,
    )


def adapter_factories(settings: Settings) -> dict[str, AdapterFactory]:
    """One factory per platform whose credentials are set."""
    factories: dict[str, AdapterFactory] = {}
    if settings.slack_enabled:
        config = slack_config(settings)
        factories["slack"] = lambda service: SlackAdapter(config, service)
    if settings.discord_enabled:
        discord = discord_config(settings)
        factories["discord"] = lambda service: DiscordAdapter(discord, service)
    return factories


class BotRuntime:
    """Runs the HTTP server, the adapters and the engine until stopped."""

    def __init__(
        self,
        settings: Settings,
        factories: dict[str, AdapterFactory],
        *,
        model: ChatModel | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.factories = factories
        self._model = model
        self._clock = clock
        self.store: SqlStore | None = None
        self.service: InterviewService | None = None
        self.adapters: list[RunningAdapter] = []
        self.http_app = build_http_app(self.readiness)
        self.http_app.router.add_post("/{platform}/events", self._platform_events)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def readiness(self) -> dict[str, bool]:
        checks = {"database": self.store is not None and await self.store.ping()}
        for name, adapter in zip(self.factories, self.adapters, strict=False):
            checks[name] = await adapter.is_ready()
        if len(self.adapters) < len(self.factories):
            checks["adapters"] = False
        return checks

    async def _platform_events(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["platform"]
        for adapter_name, adapter in zip(self.factories, self.adapters, strict=False):
            if adapter_name == name:
                if not await adapter.is_ready():
                    return web.Response(status=503, text="starting")
                return await adapter.handle_http(request)
        status = 503 if name in self.factories else 404
        return web.Response(status=status, text="not available")

    async def start(self) -> None:
        self._runner = web.AppRunner(self.http_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        addresses = self._runner.addresses
        self.port = addresses[0][1] if addresses else self.settings.http_port
        log.info("HTTP server on %s:%s", self.settings.http_host, self.port)
        self.store = await wait_for_store(self.settings)
        platforms: dict[str, Platform] = {}
        self.service = build_service(
            self.settings, self.store, platforms, model=self._model, clock=self._clock
        )
        for name, factory in self.factories.items():
            adapter = factory(self.service)
            platforms[name] = adapter.platform
            self.adapters.append(adapter)
        self.service.platforms.update(platforms)
        await self.service.recover()
        for name, adapter in zip(self.factories, self.adapters, strict=True):
            await adapter.start()
            log.info("%s adapter started", name)

    async def stop(self) -> None:
        for adapter in self.adapters:
            with suppress(Exception):
                await adapter.stop()
        if self.service is not None:
            await self.service.close()
        if self.store is not None:
            await self.store.close()
        if self._runner is not None:
            await self._runner.cleanup()


async def run_bot(settings: Settings) -> None:
    """Start everything and wait for SIGINT/SIGTERM."""
    runtime = BotRuntime(settings, adapter_factories(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start()
        await stop.wait()
    finally:
        await runtime.stop()
