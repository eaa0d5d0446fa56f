"""The LLM circuit breaker: against the fake OpenAI server (real SDK, real HTTP), in the
engine (candidate and interviewer told once per outage) and in the bot (/healthz, metrics).

The breaker's clock is a :class:`FakeTime`: the 30 s cool-down passes without sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from adapters.llm.breaker import DEGRADED, CircuitBreakerChatModel, unavailable_message
from adapters.llm.judge import OpenAIJudge
from adapters.llm.offline import OfflineChatModel
from adapters.llm.openai_chat import (
    MSG_CONNECTION,
    MSG_CUT_OFF,
    MSG_RATE_LIMITED,
    MSG_SERVER_ERROR,
    MSG_TIMEOUT,
    OpenAIChatModel,
)
from bench.fakes.openai_server import FakeOpenAI
from bot.app import BotRuntime, build_judge, build_model
from bot.settings import SettingsError, load_settings
from core.models import Interview, TurnStatus
from core.outage import CANDIDATE_NOTICE, LLM_DOWN, track_outage
from core.ports import ChatModel, ChatRequest, ChatResult, OnDelta, Usage
from core.service import InterviewService
from tests.conftest import CANDIDATE, INTERVIEWER, Engine, make_engine
from tests.fakes.recording_platform import RecordingPlatform

MODEL = "gpt-4o-mini"


def chat() -> ChatRequest:
    return ChatRequest(
        model=MODEL,
        messages=[{"role": "user", "content": "How do I reverse a linked list?"}],
        max_completion_tokens=200,
    )


async def ignore(delta: str) -> None:
    pass


class FakeTime:
    """The breaker's monotonic clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Counting:
    """Counts the calls that get past the breaker (a closed port can't count them)."""

    def __init__(self, inner: ChatModel) -> None:
        self.inner = inner
        self.label = inner.label
        self.calls = 0

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        self.calls += 1
        return await self.inner.stream_chat(request, on_delta)


class Gated:
    """A model whose calls wait for ``release`` (then answer, or fail like a 500)."""

    label: str | None = None

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.fail = False

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        self.started += 1
        await self.release.wait()
        if self.fail:
            return ChatResult(text="", usage=None, error=MSG_SERVER_ERROR)
        await on_delta("ok")
        return ChatResult(text="ok", usage=Usage(5, 1), reached_model=True)


class Failing:
    """Fails like a 500 until ``up``; then answers."""

    label: str | None = None

    def __init__(self) -> None:
        self.up = False

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        if not self.up:
            return ChatResult(text="", usage=None, error=MSG_SERVER_ERROR)
        return ChatResult(text="ok", usage=Usage(5, 1), reached_model=True)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(tokens_per_chunk=3) as server:
        yield server


GatewayFactory = Callable[..., OpenAIChatModel]


@pytest_asyncio.fixture
async def gateway(fake: FakeOpenAI) -> AsyncIterator[GatewayFactory]:
    made: list[OpenAIChatModel] = []

    def factory(
        *, max_retries: int = 0, timeout_s: float = 5.0, base_url: str | None = None
    ) -> OpenAIChatModel:
        model = OpenAIChatModel.from_settings(
            "test-key", base_url or fake.base_url, timeout_s=timeout_s, max_retries=max_retries
        )
        made.append(model)
        return model

    yield factory
    for model in made:
        await model.aclose()


# ---------------------------------------------------------------------- the breaker itself


async def test_opens_after_n_failures_in_a_row_and_then_stops_calling_the_server(
    fake: FakeOpenAI, gateway: GatewayFactory
) -> None:
    fake.fail_with(500, retry_after_ms=1, times=1000)  # down for good
    time = FakeTime()
    breaker = CircuitBreakerChatModel(gateway(max_retries=2), failures=3, cooldown_s=30, clock=time)

    results = [await breaker.stream_chat(chat(), ignore) for _ in range(10)]

    # 3 calls x (1 + 2 retries) reached the server; the other 7 turns none at all.
    assert len(fake.requests) == 9
    assert [r.error for r in results[:3]] == [MSG_SERVER_ERROR] * 3
    assert [r.outage for r in results[:3]] == [False, False, True]  # the one that opened it
    for fast in results[3:]:
        assert fast.error == unavailable_message(3)
        assert fast.outage and not fast.reached_model and fast.usage is None
    assert "failed 3 times in a row" in (results[3].error or "")
    assert "not charged" in (results[3].error or "")
    assert breaker.state == "open" and breaker.is_open

    time.advance(29.9)  # still cooling down: still nothing reaches the server
    assert (await breaker.stream_chat(chat(), ignore)).error == unavailable_message(3)
    assert len(fake.requests) == 9


async def test_after_the_cooldown_one_probe_goes_through_and_its_success_closes(
    fake: FakeOpenAI, gateway: GatewayFactory
) -> None:
    fake.fail_with(500, times=3)  # then the endpoint is back
    time = FakeTime()
    breaker = CircuitBreakerChatModel(gateway(), failures=3, cooldown_s=30, clock=time)
    for _ in range(5):
        await breaker.stream_chat(chat(), ignore)
    assert len(fake.requests) == 3 and breaker.state == "open"

    time.advance(30)
    probe = await breaker.stream_chat(chat(), ignore)

    assert probe.error is None and probe.reached_model and not probe.outage
    assert len(fake.requests) == 4
    assert breaker.state == "closed" and not breaker.is_open
    assert breaker.consecutive_failures == 0
    assert (await breaker.stream_chat(chat(), ignore)).error is None
    assert len(fake.requests) == 5


async def test_a_failed_probe_opens_it_for_another_cooldown(
    fake: FakeOpenAI, gateway: GatewayFactory
) -> None:
    fake.fail_with(500, times=4)
    time = FakeTime()
    breaker = CircuitBreakerChatModel(gateway(), failures=3, cooldown_s=30, clock=time)
    for _ in range(3):
        await breaker.stream_chat(chat(), ignore)

    time.advance(30)
    probe = await breaker.stream_chat(chat(), ignore)
    assert probe.error == MSG_SERVER_ERROR and probe.outage
    assert len(fake.requests) == 4 and breaker.state == "open"

    time.advance(29)  # a new cool-down started at the failed probe
    assert (await breaker.stream_chat(chat(), ignore)).error == unavailable_message(4)
    assert len(fake.requests) == 4
    time.advance(1)
    assert (await breaker.stream_chat(chat(), ignore)).error is None
    assert breaker.state == "closed" and len(fake.requests) == 5


async def test_half_open_lets_exactly_one_probe_through_at_a_time() -> None:
    inner = Gated()
    inner.fail = True
    inner.release.set()
    time = FakeTime()
    breaker = CircuitBreakerChatModel(inner, failures=2, cooldown_s=30, clock=time)
    for _ in range(2):
        await breaker.stream_chat(chat(), ignore)
    assert inner.started == 2 and breaker.state == "open"

    time.advance(30)
    inner.fail, inner.release = False, asyncio.Event()
    probe = asyncio.create_task(breaker.stream_chat(chat(), ignore))
    await asyncio.sleep(0)
    assert inner.started == 3 and breaker.state == "half-open"
    async with asyncio.timeout(5):  # a second call let through would wait forever
        others = [await breaker.stream_chat(chat(), ignore) for _ in range(3)]  # meanwhile
    assert inner.started == 3
    assert all(r.outage and r.error == unavailable_message(2) for r in others)

    inner.release.set()
    assert (await probe).error is None
    assert breaker.state == "closed"


class Scripted:
    """Each call waits for its own gate, then fails like a 500 or answers."""

    label: str | None = None

    def __init__(self) -> None:
        self.calls: list[tuple[asyncio.Event, bool]] = []

    def next(self, *, fail: bool) -> asyncio.Event:
        gate = asyncio.Event()
        self.calls.append((gate, fail))
        return gate

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        gate, fail = self.calls.pop(0)
        await gate.wait()
        if fail:
            return ChatResult(text="", usage=None, error=MSG_SERVER_ERROR)
        return ChatResult(text="ok", usage=Usage(5, 1), reached_model=True)


async def test_a_late_failure_from_before_the_circuit_opened_does_not_reopen_it() -> None:
    inner = Scripted()
    time = FakeTime()
    breaker = CircuitBreakerChatModel(inner, failures=2, cooldown_s=30, clock=time)
    slow = inner.next(fail=True)
    late = asyncio.create_task(breaker.stream_chat(chat(), ignore))  # admitted while closed
    await asyncio.sleep(0)
    for _ in range(2):
        inner.next(fail=True).set()
        await breaker.stream_chat(chat(), ignore)
    assert breaker.state == "open"
    time.advance(30)
    probe_gate = inner.next(fail=False)
    probe = asyncio.create_task(breaker.stream_chat(chat(), ignore))
    await asyncio.sleep(0)
    assert breaker.state == "half-open"

    slow.set()  # the old call fails now: it says nothing about the probe's endpoint
    assert (await late).outage
    assert breaker.state == "half-open"
    probe_gate.set()
    assert (await probe).error is None
    assert breaker.state == "closed"


async def test_a_cancelled_call_says_nothing_about_the_endpoint() -> None:
    inner = Gated()
    time = FakeTime()
    breaker = CircuitBreakerChatModel(inner, failures=1, cooldown_s=30, clock=time)

    # Closed: the engine stops a call (pause, deadline) before any text: no failure counted.
    call = asyncio.create_task(breaker.stream_chat(chat(), ignore))
    await asyncio.sleep(0)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert breaker.state == "closed" and breaker.consecutive_failures == 0

    # Half-open: a cancelled probe neither closes nor re-opens; the next call probes.
    inner.fail = True
    inner.release.set()
    await breaker.stream_chat(chat(), ignore)
    assert breaker.state == "open"
    time.advance(30)
    inner.fail, inner.release = False, asyncio.Event()
    probe = asyncio.create_task(breaker.stream_chat(chat(), ignore))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state == "half-open"
    inner.release.set()
    assert (await breaker.stream_chat(chat(), ignore)).error is None
    assert breaker.state == "closed"


async def test_requests_the_api_rejects_do_not_count(
    fake: FakeOpenAI, gateway: GatewayFactory
) -> None:
    fake.fail_with(400, message="Invalid 'messages'.", times=6)
    breaker = CircuitBreakerChatModel(gateway(), failures=2, cooldown_s=30, clock=FakeTime())

    results = [await breaker.stream_chat(chat(), ignore) for _ in range(6)]

    assert all(r.error and "HTTP 400" in r.error and not r.outage for r in results)
    assert len(fake.requests) == 6 and breaker.state == "closed"


async def test_an_answer_resets_the_count_of_failures_in_a_row(
    fake: FakeOpenAI, gateway: GatewayFactory
) -> None:
    breaker = CircuitBreakerChatModel(gateway(), failures=3, cooldown_s=30, clock=FakeTime())
    for _ in range(3):
        fake.fail_with(500, times=2)
        await breaker.stream_chat(chat(), ignore)
        await breaker.stream_chat(chat(), ignore)
        assert breaker.consecutive_failures == 2
        assert (await breaker.stream_chat(chat(), ignore)).error is None
    assert breaker.state == "closed" and len(fake.requests) == 9


async def test_connection_refused_opens_it(gateway: GatewayFactory) -> None:
    async with FakeOpenAI() as gone:
        url = gone.base_url
    counting = Counting(gateway(base_url=url))
    breaker = CircuitBreakerChatModel(counting, failures=2, cooldown_s=30, clock=FakeTime())

    results = [await breaker.stream_chat(chat(), ignore) for _ in range(5)]

    assert [r.error for r in results[:2]] == [MSG_CONNECTION] * 2
    assert counting.calls == 2 and breaker.state == "open"
    assert all(r.outage and not r.reached_model for r in results[1:])


async def test_timeouts_open_it(fake: FakeOpenAI, gateway: GatewayFactory) -> None:
    fake.slow_first_byte(1.0, times=2)
    breaker = CircuitBreakerChatModel(
        gateway(timeout_s=0.2), failures=2, cooldown_s=30, clock=FakeTime()
    )

    results = [await breaker.stream_chat(chat(), ignore) for _ in range(3)]

    assert [r.error for r in results[:2]] == [MSG_TIMEOUT] * 2
    assert results[2].error == unavailable_message(2)
    assert len(fake.requests) == 2


async def test_429_after_the_retries_opens_it(fake: FakeOpenAI, gateway: GatewayFactory) -> None:
    fake.fail_with(429, retry_after=0.01, times=100)
    breaker = CircuitBreakerChatModel(
        gateway(max_retries=1), failures=2, cooldown_s=30, clock=FakeTime()
    )

    results = [await breaker.stream_chat(chat(), ignore) for _ in range(4)]

    assert [r.error for r in results[:2]] == [MSG_RATE_LIMITED] * 2
    assert len(fake.requests) == 4  # 2 calls x (1 + 1 retry), then none
    assert results[3].error == unavailable_message(2)


async def test_streams_cut_by_the_network_open_it_and_keep_their_text(
    fake: FakeOpenAI, gateway: GatewayFactory
) -> None:
    fake.cut_stream_after(2, times=2)
    breaker = CircuitBreakerChatModel(gateway(), failures=2, cooldown_s=30, clock=FakeTime())

    first = await breaker.stream_chat(chat(), ignore)
    second = await breaker.stream_chat(chat(), ignore)

    assert first.error == MSG_CUT_OFF and not first.outage
    assert second.error == MSG_CUT_OFF and second.outage and second.reached_model
    assert second.text  # what arrived is kept (and charged by the engine)
    assert breaker.state == "open"


async def test_a_failing_on_delta_propagates_and_counts_as_the_endpoint_working(
    fake: FakeOpenAI, gateway: GatewayFactory
) -> None:
    fake.fail_with(500, times=1)
    breaker = CircuitBreakerChatModel(gateway(), failures=2, cooldown_s=30, clock=FakeTime())
    await breaker.stream_chat(chat(), ignore)
    assert breaker.consecutive_failures == 1

    async def broken(delta: str) -> None:
        raise RuntimeError("platform down")

    with pytest.raises(RuntimeError, match="platform down"):
        await breaker.stream_chat(chat(), broken)
    assert breaker.consecutive_failures == 0 and breaker.state == "closed"


def test_settings_are_checked_and_the_label_passes_through() -> None:
    offline = OfflineChatModel()
    assert CircuitBreakerChatModel(offline).label == offline.label
    with pytest.raises(ValueError, match="failures"):
        CircuitBreakerChatModel(offline, failures=0)
    with pytest.raises(ValueError, match="cooldown"):
        CircuitBreakerChatModel(offline, cooldown_s=0)


# ---------------------------------------------------------------------- told once (engine)


async def start(engine: Engine, candidate: str = CANDIDATE) -> Interview:
    return await engine.service.lifecycle.start(
        engine.workspace, INTERVIEWER, candidate, token_budget=50_000, time_limit_s=3600
    )


async def say(engine: Engine, interview: Interview, text: str, msg_id: str) -> None:
    assert interview.room_key is not None
    await engine.service.turns.handle_message(
        "test", interview.room_key, interview.candidate_id, msg_id, text
    )


def outage_notices(platform: RecordingPlatform, interview: Interview) -> list[str]:
    return [t for to, t in platform.notices if to == interview.id and t == CANDIDATE_NOTICE]


def outage_dms(platform: RecordingPlatform) -> list[str]:
    return [t for to, t in platform.notices if to == INTERVIEWER.user_id and "unavailable" in t]


async def test_candidate_and_interviewer_are_told_once_per_outage(
    fake: FakeOpenAI, gateway: GatewayFactory
) -> None:
    time = FakeTime()
    breaker = CircuitBreakerChatModel(gateway(), failures=3, cooldown_s=30, clock=time)
    engine = await make_engine(breaker)
    try:
        interview = await start(engine)
        fake.fail_with(500, times=3)
        for i in range(8):  # 3 reach the dead endpoint, 5 fail fast
            await say(engine, interview, f"question {i}", f"m{i}")

        assert len(fake.requests) == 3
        assert len(outage_notices(engine.platform, interview)) == 1
        (dm,) = outage_dms(engine.platform)
        assert f"<@{CANDIDATE}>" in dm and "pause" in dm
        turns = await engine.store.list_turns(interview.id)
        assert [t.status for t in turns] == [TurnStatus.FAILED] * 8
        assert [t.charged_tokens for t in turns] == [0] * 8
        stored = await engine.store.get_interview(interview.id)
        assert stored is not None and stored.tokens_used == 0 and stored.tokens_reserved == 0
        assert LLM_DOWN in stored.warnings_sent
        failure = engine.platform.replies[-1].failure or ""
        assert unavailable_message(3) in failure and "(0 tokens charged)" in failure
        # the notice comes right after the reply that opened the circuit, not before
        timeline = engine.platform.timeline
        assert (
            timeline.index(("notice", CANDIDATE_NOTICE))
            == timeline.index(("reply", "question 2")) + 1
        )

        time.advance(30)  # the endpoint is back: the probe answers, the outage is over
        await say(engine, interview, "are you back?", "m-back")
        turns = await engine.store.list_turns(interview.id)
        assert turns[-1].status is TurnStatus.ANSWERED and turns[-1].charged_tokens > 0
        assert len(fake.requests) == 4
        stored = await engine.store.get_interview(interview.id)
        assert stored is not None and LLM_DOWN not in stored.warnings_sent

        fake.fail_with(500, times=3)  # a second outage is announced again, once
        for i in range(5):
            await say(engine, interview, f"again {i}", f"n{i}")
        assert len(outage_notices(engine.platform, interview)) == 2
        assert len(outage_dms(engine.platform)) == 2
        assert len(fake.requests) == 7
        kinds = [e.kind for e in await engine.store.list_audit(interview.id)]
        assert kinds.count("llm_unavailable") == 2 and kinds.count("llm_available") == 1
    finally:
        await engine.service.close()


async def test_every_interview_running_during_an_outage_is_told_once() -> None:
    inner = Failing()
    breaker = CircuitBreakerChatModel(inner, failures=2, cooldown_s=30, clock=FakeTime())
    engine = await make_engine(breaker)
    try:
        first = await start(engine)
        second = await start(engine, "U_OTHER")
        for i in range(4):
            await say(engine, first, "hi", f"a{i}")
            await say(engine, second, "hi", f"b{i}")
        assert len(outage_notices(engine.platform, first)) == 1
        assert len(outage_notices(engine.platform, second)) == 1
        dms = outage_dms(engine.platform)
        assert len(dms) == 2
        assert sorted("<@U_CAND>" in dm for dm in dms) == [False, True]  # one about each
        assert sorted("<@U_OTHER>" in dm for dm in dms) == [False, True]
    finally:
        await engine.service.close()


async def test_an_extension_during_an_outage_does_not_announce_it_again() -> None:
    breaker = CircuitBreakerChatModel(Failing(), failures=1, cooldown_s=30, clock=FakeTime())
    engine = await make_engine(breaker)
    try:
        interview = await start(engine)
        await say(engine, interview, "hi", "m1")
        await engine.service.lifecycle.extend(INTERVIEWER, interview.id, seconds=600)
        await say(engine, interview, "hi", "m2")
        assert len(outage_notices(engine.platform, interview)) == 1
        assert len(outage_dms(engine.platform)) == 1
    finally:
        await engine.service.close()


async def test_only_one_of_two_concurrent_reports_of_the_outage_announces_it(
    engine: Engine,
) -> None:
    interview = await start(engine)
    stale = await engine.store.get_interview(interview.id)
    assert stale is not None
    outage = ChatResult(text="", usage=None, error="down", outage=True)

    # two turns (or two processes) see the outage with the same copy of the interview
    await asyncio.gather(
        track_outage(engine.service.ctx, stale, outage),
        track_outage(engine.service.ctx, stale, outage),
    )

    assert len(outage_notices(engine.platform, interview)) == 1
    assert len(outage_dms(engine.platform)) == 1


async def test_an_ended_interview_is_not_told(engine: Engine) -> None:
    interview = await start(engine)
    await engine.service.lifecycle.end(INTERVIEWER, interview.id)
    ended = await engine.store.get_interview(interview.id)
    assert ended is not None
    outage = ChatResult(text="", usage=None, error="down", outage=True)
    await track_outage(engine.service.ctx, ended, outage)
    assert outage_notices(engine.platform, interview) == [] and outage_dms(engine.platform) == []


# ---------------------------------------------------------------------- the bot: /healthz


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("SLACK_BOT_TOKEN", "DISCORD_BOT_TOKEN", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/bot.db")
    return tmp_path


class ReadyAdapter:
    def __init__(self) -> None:
        self.platform = RecordingPlatform(name="slack")

    async def start(self) -> None:
        pass

    async def is_ready(self) -> bool:
        return True

    async def stop(self) -> None:
        pass

    async def handle_http(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=404)


async def health(http: aiohttp.ClientSession, runtime: BotRuntime) -> tuple[int, dict[str, Any]]:
    async with http.get(f"http://127.0.0.1:{runtime.port}/healthz") as response:
        return response.status, await response.json()


async def circuit_gauge(http: aiohttp.ClientSession, runtime: BotRuntime) -> str:
    async with http.get(f"http://127.0.0.1:{runtime.metrics_port}/metrics") as response:
        body = await response.text()
    (line,) = [x for x in body.splitlines() if x.startswith("interview_buddy_llm_circuit_open ")]
    return line.split()[1]


async def test_healthz_says_degraded_while_the_circuit_is_open_and_recovers(
    clean_env: Path, fake: FakeOpenAI, gateway: GatewayFactory
) -> None:
    time = FakeTime()
    breaker = CircuitBreakerChatModel(gateway(), failures=2, cooldown_s=30, clock=time)
    settings = load_settings(http_host="127.0.0.1", http_port=0)

    def factory(service: InterviewService, limiter: object) -> ReadyAdapter:
        return ReadyAdapter()

    runtime = BotRuntime(settings, {"slack": factory}, model=breaker)
    await runtime.start()
    try:
        async with aiohttp.ClientSession() as http:
            healthy = {"ok": True, "status": "ok", "checks": {"database": True, "slack": True}}
            assert await health(http, runtime) == (200, healthy)
            assert await circuit_gauge(http, runtime) == "0.0"

            fake.fail_with(500, times=2)
            for _ in range(2):
                await breaker.stream_chat(chat(), ignore)
            # degraded, not down: commands, counters and reports still work, so a load
            # balancer must not take the replica out for an outage every replica shares
            status, body = await health(http, runtime)
            assert status == 200
            assert body == {
                "ok": True,
                "status": "degraded",
                "checks": {"database": True, "slack": True},
                "llm": DEGRADED,
            }
            assert body["llm"] == "degraded (circuit open)"
            assert await circuit_gauge(http, runtime) == "1.0"

            time.advance(30)  # cooled down, but not proven healthy until a probe answers
            assert (await health(http, runtime))[1]["status"] == "degraded"
            assert (await breaker.stream_chat(chat(), ignore)).error is None
            assert await health(http, runtime) == (200, healthy)
            assert await circuit_gauge(http, runtime) == "0.0"
    finally:
        await runtime.stop()


def test_build_model_wraps_the_gateway_with_the_configured_breaker(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LLM_BREAKER_FAILURES", "2")
    monkeypatch.setenv("LLM_BREAKER_COOLDOWN", "7.5")
    settings = load_settings()

    model = build_model(settings)

    assert isinstance(model, CircuitBreakerChatModel)
    assert (model.failures, model.cooldown_s) == (2, 7.5)
    assert isinstance(model.inner, OpenAIChatModel)
    assert isinstance(build_judge(settings, model), OpenAIJudge)  # shares the gateway's client

    defaults = build_model(load_settings(llm_breaker_failures=5, llm_breaker_cooldown=30))
    assert isinstance(defaults, CircuitBreakerChatModel)
    assert (defaults.failures, defaults.cooldown_s) == (5, 30)


def test_the_offline_model_gets_no_breaker(clean_env: Path) -> None:
    assert isinstance(build_model(load_settings()), OfflineChatModel)


def test_the_two_settings_are_range_checked(clean_env: Path) -> None:
    with pytest.raises(SettingsError, match="LLM_BREAKER_FAILURES"):
        load_settings(llm_breaker_failures=0)
    with pytest.raises(SettingsError, match="LLM_BREAKER_COOLDOWN"):
        load_settings(llm_breaker_cooldown=0)
