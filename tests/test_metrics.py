"""What /metrics adds for running many replicas: job lag, queued edits, platform 429s and the
model's latency, each observed through what the bot really does (the bot's own wiring in
``bot/app.py``, against the fake Slack, Discord and OpenAI)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from slack_sdk.errors import SlackApiError

from adapters.discord.runner import DiscordAdapter
from adapters.llm.breaker import CircuitBreakerChatModel
from adapters.llm.offline import OfflineChatModel
from adapters.llm.openai_chat import OpenAIChatModel
from adapters.slack.outbox import RATE_LIMITED_RETRIES
from adapters.slack.runner import SlackAdapter
from bench.fakes.discord_server import FakeDiscord
from bench.fakes.openai_server import FakeOpenAI
from bench.fakes.slack_server import FakeSlack
from bot.app import adapter_factories, build_model, queued_updates
from bot.metrics import PrometheusMetrics, watch_gc_pauses, watch_outbox
from bot.settings import Settings, load_settings
from core.clock import ManualClock
from core.models import Job
from core.ports import ChatRequest
from core.service import InterviewService
from tests.conftest import Engine, make_engine
from tests.fakes.memory_uow import MemoryUnitOfWorkFactory


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db", **overrides)


@pytest_asyncio.fixture
async def engine() -> AsyncIterator[Engine]:
    built = await make_engine()
    yield built
    await built.service.close()


class ClosedLimiter:
    """A shared rate budget with no slot free (every edit waits)."""

    async def acquire(self, key: str, rate: float, burst: int = 1) -> None:
        await asyncio.Event().wait()

    async def try_acquire(self, key: str, rate: float, burst: int = 1) -> bool:
        return False


async def test_a_job_started_late_shows_its_lag_by_kind() -> None:
    clock = ManualClock()
    uow = MemoryUnitOfWorkFactory()
    model = OfflineChatModel()
    service = InterviewService(uow, model, clock, {}, metrics=PrometheusMetrics(), owner="p1")
    ran: list[str] = []

    async def handler(job: Job) -> None:
        ran.append(job.key)

    service.jobs.on("lag-probe", handler)
    count_before = sample("interview_buddy_job_lag_seconds_count", kind="lag-probe")
    sum_before = sample("interview_buddy_job_lag_seconds_sum", kind="lag-probe")
    async with uow() as work:  # due now, created by a process this one never heard from
        await work.jobs.schedule(Job("lag-probe", "lag-probe:1", clock.now()))
        await work.commit()
    clock.advance(7)  # ...and found by this one's sweep 7 s later
    await service.sweep()
    assert ran == ["lag-probe:1"]
    count = sample("interview_buddy_job_lag_seconds_count", kind="lag-probe") - count_before
    total = sample("interview_buddy_job_lag_seconds_sum", kind="lag-probe") - sum_before
    assert (count, total) == (1, 7.0)
    await service.close()


async def test_a_streamed_reply_observes_time_to_first_text_and_to_the_end(
    tmp_path: Path,
) -> None:
    async with FakeOpenAI(tokens_per_chunk=2, chunk_delay=0.02, first_token_delay=0.1) as fake:
        model = build_model(
            settings(tmp_path, openai_api_key="sk-test", openai_base_url=fake.base_url)
        )
        assert isinstance(model, CircuitBreakerChatModel)
        assert isinstance(model.inner, OpenAIChatModel)
        first = sample("interview_buddy_llm_first_token_seconds_count")
        first_sum = sample("interview_buddy_llm_first_token_seconds_sum")
        streams = sample("interview_buddy_llm_stream_seconds_count")
        stream_sum = sample("interview_buddy_llm_stream_seconds_sum")
        fake.replies.append("one two three four five six seven eight")
        request = ChatRequest("gpt-4o-mini", [{"role": "user", "content": "hi"}], 200)

        async def ignore(_: str) -> None:
            pass

        result = await model.stream_chat(request, ignore)
        await model.inner.aclose()
    assert result.error is None and result.text
    assert sample("interview_buddy_llm_first_token_seconds_count") == first + 1
    assert sample("interview_buddy_llm_stream_seconds_count") == streams + 1
    to_first = sample("interview_buddy_llm_first_token_seconds_sum") - first_sum
    to_end = sample("interview_buddy_llm_stream_seconds_sum") - stream_sum
    assert 0.1 <= to_first < to_end  # the fake's first-token delay, then more chunks


def slack_settings(tmp_path: Path, slack: FakeSlack) -> Settings:
    return settings(
        tmp_path,
        slack_bot_token=slack.bot_token,
        slack_signing_secret="secret",
        slack_api_url=slack.api_url,
    )


async def test_a_429_from_slack_is_counted_by_method_including_the_last_one(
    tmp_path: Path, engine: Engine
) -> None:
    async with FakeSlack() as slack:
        factory = adapter_factories(slack_settings(tmp_path, slack))["slack"]
        adapter = factory(engine.service, ClosedLimiter())
        assert isinstance(adapter, SlackAdapter)
        labels = {"platform": "slack", "method": "auth.test"}
        before = sample("interview_buddy_platform_rate_limited_total", **labels)
        slack.fail_next("auth.test", "ratelimited", retry_after=0)
        await adapter.outbox.call("auth.test")  # retried after Retry-After: succeeds
        for _ in range(RATE_LIMITED_RETRIES + 1):
            slack.fail_next("auth.test", "ratelimited", retry_after=0)
        with pytest.raises(SlackApiError):  # every retry refused: the caller sees the 429
            await adapter.outbox.call("auth.test")
        refused = len(slack.rate_limited)
        await adapter.outbox.close()
    assert refused == 1 + RATE_LIMITED_RETRIES + 1
    assert sample("interview_buddy_platform_rate_limited_total", **labels) == before + refused


async def test_edits_waiting_for_a_slot_are_the_outbox_gauge(
    tmp_path: Path, engine: Engine
) -> None:
    async with FakeSlack() as slack:
        factory = adapter_factories(slack_settings(tmp_path, slack))["slack"]
        adapter = factory(engine.service, ClosedLimiter())
        queued = queued_updates(adapter)
        assert queued is not None
        watch_outbox("slack", queued)
        for ts in ("1.1", "2.2", "3.3", "3.3"):  # the last replaces the third (coalesced)
            adapter.outbox.update("C1", ts, text=f"state {ts}")
        await asyncio.sleep(0)
        gauge = sample("interview_buddy_outbox_queued_updates", platform="slack")
        await adapter.outbox.close()
    assert gauge == 3


async def test_a_429_from_discord_is_counted_by_route(tmp_path: Path, engine: Engine) -> None:
    async with FakeDiscord() as fake:
        ids = fake.seed()
        config = settings(
            tmp_path,
            discord_bot_token="test-token",
            discord_api_base=fake.api_base,
            discord_guild_ids=str(ids.guild_id),
        )
        adapter = adapter_factories(config)["discord"](engine.service, ClosedLimiter())
        assert isinstance(adapter, DiscordAdapter)
        queued = queued_updates(adapter)
        assert queued is not None and queued() == 0
        labels = {"platform": "discord", "method": "GET /users/@me"}
        before = sample("interview_buddy_platform_rate_limited_total", **labels)
        original = discord.http.Route.BASE
        discord.http.Route.BASE = fake.api_base
        try:
            await adapter.client.login("test-token")
            fake.exhaust_bucket("GET /users/@me")  # another process used it up
            await adapter.client.http.request(discord.http.Route("GET", "/users/@me"))
        finally:
            discord.http.Route.BASE = original
            await adapter.client.close()
        assert fake.rate_limited == 1  # discord.py waited and retried by itself
    assert sample("interview_buddy_platform_rate_limited_total", **labels) == before + 1


def test_every_full_garbage_collection_is_timed() -> None:
    watch_gc_pauses()
    watch_gc_pauses()  # once per process, however often it is asked

    def count() -> float:
        labels = {"generation": "2"}
        return REGISTRY.get_sample_value("interview_buddy_gc_pause_seconds_count", labels) or 0.0

    before = count()
    gc.collect()
    assert count() == before + 1
