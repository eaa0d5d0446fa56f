"""Composition root: builds the database, model, engine, scheduler and adapters from settings."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from adapters.discord.http_trace import rate_limit_trace
from adapters.llm.breaker import DEGRADED, CircuitBreakerChatModel
from adapters.llm.judge import OpenAIJudge
from adapters.llm.offline import OfflineChatModel, OfflineJudge
from adapters.llm.openai_chat import OpenAIChatModel
from adapters.report_chart import render_chart
from bot import database
from bot.database import wait_for_database
from bot.garbage import tune_after_start_up
from bot.http import build_health_app, build_metrics_app
from bot.loop_lag import LoopLagMonitor
from bot.metrics import (
    EVENT_LOOP_LAG,
    PrometheusMetrics,
    count_rate_limited,
    observe_llm,
    watch_gc_pauses,
    watch_llm_circuit,
    watch_outbox,
)
from bot.settings import Settings, SettingsError
from core.challenges import find_challenge, list_challenges
from core.clock import Clock, SystemClock
from core.errors import NotFound, StartupError
from core.ports import Alarm, ChatModel, Judge, Platform, RateLimiter
from core.service import EngineConfig, InterviewService
from core.tokens import TokenCounter
from scheduler.alarm import SchedulerAlarm
from storage import SqlRateLimiter, UnitOfWorkFactory

if TYPE_CHECKING:  # imported when the platform is configured (discord.py, Bolt: ~30 MiB each)
    from adapters.discord.runner import DiscordConfig
    from adapters.slack.runner import SlackConfig

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
        """Requests to ``/{platform}/events`` (Slack over HTTP): 503 until ready, 404 for
        an adapter that takes no HTTP requests."""
        ...


# An adapter is built from the engine and the rate budget all processes share.
AdapterFactory = Callable[[InterviewService, RateLimiter], RunningAdapter]


def build_model(settings: Settings) -> ChatModel:
    """The OpenAI-compatible gateway behind a circuit breaker when configured (opens after
    ``LLM_BREAKER_FAILURES`` failures in a row, probes after ``LLM_BREAKER_COOLDOWN``
    seconds), else the labelled offline model (it can't fail, so it needs none)."""
    if not settings.uses_real_model:
        return OfflineChatModel(delay_s=0.02)
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    gateway = OpenAIChatModel.from_settings(
        key,
        settings.openai_base_url,
        timeout_s=settings.llm_timeout,
        max_retries=settings.llm_max_retries,
        token_limit_param=settings.llm_token_param,
        on_latency=observe_llm,
    )
    return CircuitBreakerChatModel(
        gateway,
        failures=settings.llm_breaker_failures,
        cooldown_s=settings.llm_breaker_cooldown,
    )


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        model=settings.llm_model,
        time_limit_s=settings.default_time_limit,
        token_budget=settings.default_token_budget,
        challenge_slug=settings.default_challenge,
        lease_s=settings.turn_lease_s,
        timezone=settings.timezone,
        reminders_s=settings.reminder_offsets,
        schedule_grace_s=settings.schedule_grace,
        weekly_summary=None if settings.weekly_summary == "off" else settings.weekly_summary,
        team_channels=_per_platform(settings.slack_team_channel, settings.discord_team_channel),
        interviewer_channels=_per_platform(
            settings.slack_interviewer_channel, settings.discord_interviewer_channel
        ),
        evaluation=settings.evaluation == "on",
        evaluation_model=settings.evaluation_model,
        max_message_chars=settings.max_message_chars,
        candidate_messages_per_minute=settings.candidate_messages_per_minute,
        workspace_llm_calls_per_minute=settings.workspace_llm_calls_per_minute,
        retention_days=settings.retention_days,
    )


def build_judge(settings: Settings, model: ChatModel) -> Judge:
    """The judge that goes with the chat model: the API's, or the offline rules."""
    if isinstance(model, CircuitBreakerChatModel):
        model = model.inner  # reports are not candidate turns: the judge retries on its own
    if isinstance(model, OpenAIChatModel):
        return OpenAIJudge(model.client)
    return OfflineJudge()


def _per_platform(slack: str | None, discord: str | None) -> dict[str, str]:
    return {name: value for name, value in (("slack", slack), ("discord", discord)) if value}


async def open_database(settings: Settings) -> UnitOfWorkFactory:
    """Apply migrations, then connect (one attempt; :class:`StartupError` on failure)."""
    return await database.open_database(settings.database_url)


def build_service(
    settings: Settings,
    uow: UnitOfWorkFactory,
    platforms: dict[str, Platform],
    *,
    model: ChatModel | None = None,
    clock: Clock | None = None,
    alarm: Alarm | None = None,
    limiter: RateLimiter | None = None,
) -> InterviewService:
    model = model or build_model(settings)
    if isinstance(model, CircuitBreakerChatModel):
        breaker = model
        watch_llm_circuit(lambda: breaker.is_open)
    return InterviewService(
        uow,
        model,
        clock or SystemClock(),
        platforms,
        engine_config(settings),
        metrics=PrometheusMetrics(),
        alarm=alarm,
        judge=build_judge(settings, model),
        render_chart=render_chart,
        limiter=limiter,
    )


def slack_config(settings: Settings) -> SlackConfig:
    from adapters.slack.runner import SlackConfig

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
    from adapters.discord.runner import DiscordConfig

    assert settings.discord_bot_token is not None
    return DiscordConfig(
        bot_token=settings.discord_bot_token,
        api_base=settings.discord_api_base,
        guild_ids=tuple(
            int(g) for g in settings.discord_guild_ids.replace(" ", "").split(",") if g
        ),
        interview_channel=settings.discord_interview_channel,
        interviewer_role=settings.discord_interviewer_role,
        shard_count=settings.discord_shard_count,
        shard_ids=tuple(int(i) for i in settings.discord_shard_ids.split(",") if i) or None,
    )


def adapter_factories(settings: Settings) -> dict[str, AdapterFactory]:
    """One factory per platform whose credentials are set."""
    factories: dict[str, AdapterFactory] = {}
    if settings.slack_enabled:
        from adapters.slack.runner import SlackAdapter

        config = slack_config(settings)
        factories["slack"] = lambda service, limiter: SlackAdapter(
            config,
            service,
            rate_limiter=limiter,
            outbox_options={"on_rate_limited": count_rate_limited("slack")},
        )
    if settings.discord_enabled:
        from adapters.discord.runner import DiscordAdapter

        discord = discord_config(settings)
        factories["discord"] = lambda service, limiter: DiscordAdapter(
            discord,
            service,
            client_options={"http_trace": rate_limit_trace(count_rate_limited("discord"))},
        )
    return factories


async def check_default_challenge(settings: Settings, uow: UnitOfWorkFactory) -> None:
    """``DEFAULT_CHALLENGE`` must name a built-in or global custom challenge."""
    async with uow() as work:
        try:
            await find_challenge(work.challenges, None, settings.default_challenge)
            return
        except NotFound as exc:
            error = exc
        known = ", ".join(c.slug for c in await list_challenges(work.challenges, None))
    raise SettingsError(
        f"invalid configuration: DEFAULT_CHALLENGE: there is no challenge "
        f"{settings.default_challenge!r}; known challenges: {known}"
    ) from error


def queued_updates(adapter: RunningAdapter) -> Callable[[], int] | None:
    """How many message edits the adapter holds back for its rate limits (metrics)."""
    # An adapter's module is imported only when its platform is configured: look it up.
    slack = sys.modules.get("adapters.slack.runner")
    if slack is not None and isinstance(adapter, slack.SlackAdapter):
        outbox = adapter.outbox
        return lambda: outbox.queued_updates
    discord = sys.modules.get("adapters.discord.runner")
    if discord is not None and isinstance(adapter, discord.DiscordAdapter):
        platform = adapter.platform
        return lambda: platform.queued_updates
    return None


class BotRuntime:
    """Runs the HTTP servers, the adapters and the engine until stopped."""

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
        self.database: UnitOfWorkFactory | None = None
        self.service: InterviewService | None = None
        self.alarm: SchedulerAlarm | None = None
        self.adapters: list[RunningAdapter] = []
        self.http_app = build_health_app(self.readiness, self.degraded)
        self.http_app.router.add_post("/{platform}/events", self._platform_events)
        self._runners: list[web.AppRunner] = []
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.stopping = False  # set by stop(): new requests get 503
        self.loop_lag = LoopLagMonitor(EVENT_LOOP_LAG.observe)

    async def readiness(self) -> dict[str, bool]:
        checks = {"database": self.database is not None and await self.database.ping()}
        for name, adapter in zip(self.factories, self.adapters, strict=False):
            checks[name] = await adapter.is_ready()
        if len(self.adapters) < len(self.factories):
            checks["adapters"] = False
        if self.stopping:
            checks["accepting"] = False  # shutting down: send new work elsewhere
        return checks

    def degraded(self) -> dict[str, str]:
        """What works badly right now: the model while its circuit breaker is open."""
        model = self.service.ctx.model if self.service is not None else None
        if isinstance(model, CircuitBreakerChatModel) and model.is_open:
            return {"llm": DEGRADED}
        return {}

    async def _platform_events(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["platform"]
        if self.stopping and name in self.factories:
            # Shutting down: Slack retries the request, or the load balancer sends it to
            # another process. Work already accepted is finished or handed over.
            return web.Response(status=503, text="shutting down")
        for adapter_name, adapter in zip(self.factories, self.adapters, strict=False):
            if adapter_name == name:
                # The adapter decides: 503 while it starts, 404 where it takes no HTTP at all
                # (Slack in Socket Mode, Discord), whatever the request says.
                return await adapter.handle_http(request)
        status = 503 if name in self.factories else 404
        return web.Response(status=status, text="not available")

    async def _serve(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            variable = "METRICS_PORT" if app is not self.http_app else "HTTP_PORT"
            raise StartupError(
                f"could not listen on {host}:{port} ({variable}): {exc.strerror or exc}"
            ) from exc
        addresses = runner.addresses
        return int(addresses[-1][1]) if addresses else port

    async def start(self) -> None:
        settings = self.settings
        self.port = await self._serve(self.http_app, settings.http_host, settings.http_port)
        log.info("HTTP server on %s:%s", settings.http_host, self.port)
        self.metrics_port = await self._serve(
            build_metrics_app(), settings.metrics_host, settings.metrics_port
        )
        log.info("metrics on http://%s:%s/metrics", settings.metrics_host, self.metrics_port)
        self.loop_lag.start()
        self.database = await wait_for_database(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )
        await check_default_challenge(settings, self.database)
        # The model's encoding (~50 MiB, half a second to build) is loaded now rather than by
        # the first interview's start, where it would hold the event loop that long.
        await asyncio.to_thread(TokenCounter, settings.llm_model)
        self.alarm = SchedulerAlarm(
            self._wake, self._sweep, sweep_s=settings.job_sweep_s, clock=self._clock
        )
        # One limiter for the adapters (Slack's budgets) and the engine (the candidates' and
        # workspaces' rate limits), shared with every other process through the database.
        limiter = SqlRateLimiter(self.database.engine)
        self.service = build_service(
            settings,
            self.database,
            {},
            model=self._model,
            clock=self._clock,
            alarm=self.alarm,
            limiter=limiter,
        )
        self.service.jobs.claim_s = settings.job_claim_s
        for name, factory in self.factories.items():
            adapter = factory(self.service, limiter)
            self.service.platforms[name] = adapter.platform
            self.adapters.append(adapter)
            if (queued := queued_updates(adapter)) is not None:
                watch_outbox(name, queued)
        for name, adapter in zip(self.factories, self.adapters, strict=True):
            await adapter.start()
            log.info("%s adapter started", name)
        # Interrupted turns and overdue deadlines are handled once the platforms are
        # connected; only then do the scheduled wake-ups begin.
        await self.service.recover()
        self.alarm.start()

    async def _wake(self) -> None:
        if self.service is not None:
            await self.service.jobs.run_due()

    async def _sweep(self) -> None:
        if self.service is not None:
            try:
                await self.service.sweep()
            except Exception:
                log.exception("the periodic sweep failed")

    async def stop(self, grace_s: float = 0.0) -> None:
        """Stop everything (also after a failed or cancelled start).

        First no new work: ``/slack/events`` and ``/healthz`` answer 503, the wake-ups
        stop, and no new turn or job is started (messages that still arrive are stored and
        left to the next process). Replies and jobs under way get ``grace_s`` minus a
        reserve (:func:`shutdown_reserve`) to finish; then they are interrupted: a reply
        records itself as ``failed`` ("interrupted"), charged what it cost, and the
        candidate is asked to send the message again. Then this process's leases and job
        claims are released, so another process takes over at once rather than when they
        expire, and the adapters and the database are closed. ``grace_s=0``: interrupt at once.
        """
        self.stopping = True
        loop = asyncio.get_running_loop()
        drain_until = loop.time() + max(0.0, grace_s - shutdown_reserve(grace_s))

        def left() -> float:
            return max(0.0, drain_until - loop.time())

        service = self.service
        if service is not None:
            service.turns.stopping = service.jobs.stopping = True
        if self.alarm is not None:
            await self.alarm.stop(timeout_s=left() if grace_s > 0 else 5.0)
        if service is not None:
            await service.turns.stop(left())
            await service.jobs.stop(left())
            try:
                claims, leases = await asyncio.wait_for(service.jobs.release_all(), RELEASE_S)
                log.info("released %d lease(s) and %d job claim(s)", leases, claims)
            except Exception:
                log.warning("could not release leases and job claims", exc_info=True)
        for adapter in self.adapters:
            try:
                await adapter.stop()
            except Exception:
                log.warning("stopping an adapter failed", exc_info=True)
        if service is not None:
            await service.close()
        if self.database is not None:
            await self.database.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        await self.loop_lag.stop()


RELEASE_S = 2.0  # releasing this process's leases and claims at shutdown may take this long


def shutdown_reserve(grace_s: float) -> float:
    """The part of SHUTDOWN_GRACE kept for interrupting what did not finish and for
    closing the adapters and the database: a quarter of it, at most 5 s."""
    return min(5.0, grace_s / 4)


async def run_bot(settings: Settings) -> int:
    """Start everything and run until SIGINT/SIGTERM; returns the process exit code.

    A signal stops the bot at any stage: during start-up (e.g. while waiting for the
    database) it exits at once with 128 + the signal number; once running, it shuts down
    cleanly within ``SHUTDOWN_GRACE`` (:meth:`BotRuntime.stop`) and exits 0. A second
    signal exits immediately.
    """
    runtime = BotRuntime(settings, adapter_factories(settings))
    stop = asyncio.Event()
    received: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if received:
            log.warning("second signal: exiting now")
            os._exit(128 + signum)
        received.append(signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal, sig)
    starting = asyncio.create_task(runtime.start())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            log.info("stopping during start-up")
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return 128 + received[0]
        starting.result()  # a start-up failure propagates (StartupError: one line)
        tune_after_start_up()  # measured in bench/capacity.py: docs/PERFORMANCE.md, item 5
        watch_gc_pauses()
        log.info("ready")
        await stopping
        log.info("stopping")
        return 0
    finally:
        stopping.cancel()
        grace = settings.shutdown_grace
        try:
            async with asyncio.timeout(grace):
                await runtime.stop(grace)
        except TimeoutError:
            log.warning("shutdown took longer than SHUTDOWN_GRACE (%g s); exiting anyway", grace)
