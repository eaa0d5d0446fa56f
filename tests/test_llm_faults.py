"""LLM faults end to end: the engine with the real OpenAI gateway against the fake server.

For each fault (429 with Retry-After, 500, a timeout, a stream cut mid-way, an endpoint that
is down): the retries are bounded (the requests the fake saw are counted), the candidate
reads a clear message, the charge is right (what ``budget.charge`` gives, and what the
interview's counter holds), and the next message of the same session is answered.

``tests/test_llm_gateway.py`` covers the gateway alone (which errors are retried, the
messages, partial text); ``tests/test_llm_breaker.py`` the circuit breaker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from aiohttp import web

from adapters.llm.openai_chat import (
    MSG_CONNECTION,
    MSG_CUT_OFF,
    MSG_RATE_LIMITED,
    MSG_SERVER_ERROR,
    MSG_TIMEOUT,
    OpenAIChatModel,
)
from bench.fakes.openai_server import FakeOpenAI
from core import texts
from core.models import Interview, Turn, TurnStatus
from core.tokens import TokenCounter
from tests.conftest import CANDIDATE, INTERVIEWER, Engine, make_engine

COUNTER = TokenCounter("gpt-4o-mini")


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(tokens_per_chunk=3) as server:
        yield server


class Session:
    """One interview on an engine whose model is the OpenAI gateway."""

    def __init__(self, engine: Engine, model: OpenAIChatModel, interview: Interview) -> None:
        self.engine, self.model, self.interview = engine, model, interview
        self.sent = 0

    @classmethod
    async def open(cls, base_url: str, *, max_retries: int, timeout_s: float = 5.0) -> Session:
        model = OpenAIChatModel.from_settings(
            "test-key", base_url, timeout_s=timeout_s, max_retries=max_retries
        )
        engine = await make_engine(model)
        interview = await engine.service.lifecycle.start(
            engine.workspace, INTERVIEWER, CANDIDATE, time_limit_s=3600, token_budget=20_000
        )
        return cls(engine, model, interview)

    async def close(self) -> None:
        await self.engine.service.close()
        await self.model.aclose()

    async def say(self, text: str) -> Turn:
        assert self.interview.room_key is not None
        self.sent += 1
        await self.engine.service.turns.handle_message(
            "test", self.interview.room_key, CANDIDATE, f"m{self.sent}", text
        )
        return (await self.engine.store.list_turns(self.interview.id))[-1]

    async def tokens_used(self) -> int:
        stored = await self.engine.store.get_interview(self.interview.id)
        assert stored is not None and stored.tokens_reserved == 0
        return stored.tokens_used

    def last_failure(self) -> str | None:
        return self.engine.platform.replies[-1].failure

    async def next_message_is_answered(self, fake: FakeOpenAI | None, before: int) -> None:
        """The session goes on: the next message is answered and charged its usage."""
        requests = len(fake.requests) if fake is not None else 0
        turn = await self.say("Let's go on: what is the complexity?")
        assert turn.status is TurnStatus.ANSWERED and turn.error is None
        assert turn.usage_reported
        assert turn.charged_tokens == turn.prompt_tokens + turn.completion_tokens > 0
        assert await self.tokens_used() == before + turn.charged_tokens
        assert self.engine.platform.replies[-1].footer is not None
        if fake is not None:
            assert len(fake.requests) == requests + 1
            # a failed exchange is not re-sent: system prompt and the new message only
            assert [m["role"] for m in fake.requests[-1]["messages"]] == ["system", "user"]


OpenSession = Callable[..., Awaitable[Session]]


@pytest_asyncio.fixture
async def open_session(fake: FakeOpenAI) -> AsyncIterator[OpenSession]:
    """``await open_session(max_retries=2)``: a session on the fake (or on ``base_url``)."""
    opened: list[Session] = []

    async def factory(
        base_url: str | None = None, *, max_retries: int, timeout_s: float = 5.0
    ) -> Session:
        session = await Session.open(
            base_url or fake.base_url, max_retries=max_retries, timeout_s=timeout_s
        )
        opened.append(session)
        return session

    yield factory
    for session in opened:
        await session.close()


async def test_429_with_retry_after_is_waited_out_and_the_message_answered(
    fake: FakeOpenAI, open_session: OpenSession
) -> None:
    session = await open_session(max_retries=2)
    fake.fail_with(429, retry_after=0.2)
    started = time.monotonic()

    turn = await session.say("How do I start?")

    assert time.monotonic() - started >= 0.2  # the SDK waited as Retry-After said
    assert len(fake.requests) == 2
    assert turn.status is TurnStatus.ANSWERED
    assert await session.tokens_used() == turn.charged_tokens > 0


async def test_429_on_every_attempt_gives_up_after_the_retries_and_costs_nothing(
    fake: FakeOpenAI, open_session: OpenSession
) -> None:
    session = await open_session(max_retries=2)
    fake.fail_with(429, retry_after=0.01, times=3)

    turn = await session.say("How do I start?")

    assert len(fake.requests) == 3  # 1 + 2 retries, then the turn gives up
    assert turn.status is TurnStatus.FAILED and turn.charged_tokens == 0
    assert session.last_failure() == texts.failed(MSG_RATE_LIMITED, 0)
    assert await session.tokens_used() == 0
    await session.next_message_is_answered(fake, before=0)


async def test_500_on_every_attempt_gives_up_after_the_retries_and_costs_nothing(
    fake: FakeOpenAI, open_session: OpenSession
) -> None:
    session = await open_session(max_retries=2)
    fake.fail_with(500, retry_after_ms=1, times=3)

    turn = await session.say("How do I start?")

    assert len(fake.requests) == 3
    assert turn.status is TurnStatus.FAILED and turn.charged_tokens == 0
    assert session.last_failure() == texts.failed(MSG_SERVER_ERROR, 0)
    assert await session.tokens_used() == 0
    await session.next_message_is_answered(fake, before=0)


async def test_a_timeout_on_every_attempt_gives_up_after_the_retries_and_costs_nothing(
    fake: FakeOpenAI, open_session: OpenSession
) -> None:
    session = await open_session(max_retries=1, timeout_s=0.25)
    fake.slow_first_byte(1.0, times=2)

    turn = await session.say("How do I start?")

    assert len(fake.requests) == 2
    assert turn.status is TurnStatus.FAILED and turn.charged_tokens == 0
    assert session.last_failure() == texts.failed(MSG_TIMEOUT, 0)
    assert await session.tokens_used() == 0
    await session.next_message_is_answered(fake, before=0)


async def test_a_stream_cut_mid_way_is_charged_its_prompt_and_what_arrived(
    fake: FakeOpenAI, open_session: OpenSession
) -> None:
    session = await open_session(max_retries=2)
    fake.cut_stream_after(4)

    turn = await session.say("How do I start?")

    assert len(fake.requests) == 1  # never retried mid-stream: it was billed already
    assert turn.status is TurnStatus.FAILED and not turn.usage_reported
    reply = session.engine.platform.replies[-1]
    assert turn.reply and reply.text == turn.reply  # the partial text stays visible
    expected = turn.prompt_tokens + COUNTER.count_text(turn.reply)
    assert turn.charged_tokens == expected > turn.prompt_tokens > 0
    assert reply.failure == texts.failed(MSG_CUT_OFF, expected)
    assert await session.tokens_used() == expected
    await session.next_message_is_answered(fake, before=expected)


class FakeOnPort(FakeOpenAI):
    """The fake on a given port: the endpoint that was down comes back where it was."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.fixed_port = port

    async def start(self) -> None:
        self._runner = web.AppRunner(self.build_app(), **self.runner_options)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.fixed_port).start()
        self._port = self.fixed_port


async def test_an_endpoint_that_is_down_is_tried_a_bounded_number_of_times(
    open_session: OpenSession, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeOpenAI() as gone:
        port = gone.port  # nothing listens there any more: connection refused
    session = await open_session(f"http://127.0.0.1:{port}/v1", max_retries=2)
    caplog.set_level(logging.INFO, logger="openai")

    turn = await session.say("How do I start?")

    retries = [r for r in caplog.records if r.getMessage().startswith("Retrying request")]
    assert len(retries) == 2  # 3 connection attempts in all, then the turn gives up
    assert turn.status is TurnStatus.FAILED and turn.charged_tokens == 0
    assert session.last_failure() == texts.failed(MSG_CONNECTION, 0)
    assert await session.tokens_used() == 0

    async with FakeOnPort(port) as back:  # the endpoint is up again
        await session.next_message_is_answered(back, before=0)
