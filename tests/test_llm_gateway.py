"""The OpenAI gateway against a real local fake server, through the real openai SDK."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from openai import AsyncOpenAI

from adapters.llm import openai_chat
from adapters.llm.breaker import CircuitBreakerChatModel
from adapters.llm.openai_chat import (
    MSG_CONNECTION,
    MSG_CUT_OFF,
    MSG_CUT_OFF_EMPTY,
    MSG_RATE_LIMITED,
    MSG_SERVER_ERROR,
    MSG_TIMEOUT,
    OpenAIChatModel,
)
from bench.fakes.openai_server import FakeOpenAI, default_reply
from core.ports import ChatMessage, ChatRequest
from core.tokens import TokenCounter

MODEL = "gpt-4o-mini"
MESSAGES: list[ChatMessage] = [
    {"role": "system", "content": "You are a helpful interview assistant."},
    {"role": "user", "content": "How do I reverse a linked list?", "name": "candidate"},
]
REPLY = (
    "Walk the list once, keeping three pointers: previous, current and next. "
    "At each step point current.next at previous, then advance all three."
)

ModelFactory = Callable[..., OpenAIChatModel]


class Collector:
    """An ``on_delta`` that records every delta."""

    def __init__(self) -> None:
        self.deltas: list[str] = []

    async def __call__(self, delta: str) -> None:
        self.deltas.append(delta)


def chat(max_tokens: int = 500, **kwargs: Any) -> ChatRequest:
    return ChatRequest(
        model=kwargs.pop("model", MODEL),
        messages=kwargs.pop("messages", MESSAGES),
        max_completion_tokens=max_tokens,
        **kwargs,
    )


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(tokens_per_chunk=3) as server:
        yield server


@pytest_asyncio.fixture
async def make_model(fake: FakeOpenAI) -> AsyncIterator[ModelFactory]:
    made: list[OpenAIChatModel] = []

    def factory(
        *, max_retries: int = 2, timeout_s: float = 5.0, base_url: str | None = None, **kw: Any
    ) -> OpenAIChatModel:
        model = OpenAIChatModel.from_settings(
            "test-key",
            base_url or fake.base_url,
            timeout_s=timeout_s,
            max_retries=max_retries,
            **kw,
        )
        made.append(model)
        return model

    yield factory
    for model in made:
        await model.aclose()


# -- streaming and usage ---------------------------------------------------------------


async def test_streams_reply_in_ordered_deltas(fake: FakeOpenAI, make_model: ModelFactory) -> None:
    fake.replies.append(REPLY)
    on_delta = Collector()

    result = await make_model().stream_chat(chat(), on_delta)

    assert result.error is None
    assert result.reached_model
    assert result.finish_reason == "stop"
    assert len(on_delta.deltas) > 5
    assert "".join(on_delta.deltas) == REPLY == result.text


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4"])  # o200k_base and cl100k_base
async def test_usage_equals_independent_token_counts(
    fake: FakeOpenAI, make_model: ModelFactory, model: str
) -> None:
    fake.replies.append(REPLY)

    result = await make_model().stream_chat(chat(model=model), Collector())

    counter = TokenCounter(model)
    assert result.usage is not None
    assert result.usage.prompt_tokens == counter.count_messages(MESSAGES)
    assert result.usage.completion_tokens == counter.count_text(result.text)
    assert result.usage.total == result.usage.prompt_tokens + result.usage.completion_tokens


async def test_max_completion_tokens_truncates_token_exactly(
    fake: FakeOpenAI, make_model: ModelFactory
) -> None:
    on_delta = Collector()

    result = await make_model().stream_chat(chat(max_tokens=17), on_delta)

    counter = TokenCounter(MODEL)
    full = default_reply(MESSAGES[-1]["content"])
    assert result.error is None
    assert result.finish_reason == "length"
    assert (
        result.text
        == counter.encoding.decode(counter.encode(full)[:17])
        == "".join(on_delta.deltas)
    )
    assert result.usage is not None
    assert result.usage.completion_tokens == 17 == counter.count_text(result.text)


@pytest.mark.parametrize("param", ["max_completion_tokens", "max_tokens"])
async def test_request_body_carries_usage_option_and_token_param(
    fake: FakeOpenAI, make_model: ModelFactory, param: str
) -> None:
    other = "max_tokens" if param == "max_completion_tokens" else "max_completion_tokens"
    model = make_model(token_limit_param=param)

    result = await model.stream_chat(chat(max_tokens=9), Collector())
    await model.stream_chat(chat(temperature=0.2), Collector())

    first, second = fake.requests
    assert first["stream"] is True
    assert first["stream_options"] == {"include_usage": True}
    assert first[param] == 9
    assert other not in first
    assert "temperature" not in first
    assert first["messages"] == MESSAGES
    assert second["temperature"] == 0.2
    assert result.usage is not None and result.usage.completion_tokens == 9
    assert result.finish_reason == "length"


async def test_calls_one_after_another_share_one_connection(
    fake: FakeOpenAI, make_model: ModelFactory
) -> None:
    """The stream is read to its end, past [DONE], so its connection goes back to the pool:
    the next call opens no new TCP (and, against the real API, TLS) connection."""
    model = make_model()
    for _ in range(3):
        fake.replies.append(REPLY)
        result = await model.stream_chat(chat(), Collector())
        assert result.error is None and result.text == REPLY
    assert len(fake.connections) == 3 and len(set(fake.connections)) == 1, fake.connections


async def test_a_server_that_holds_the_stream_open_after_done_costs_one_second_at_most(
    make_model: ModelFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What follows [DONE] is read for DRAIN_S at most; then the reply stands as it is."""
    monkeypatch.setattr(openai_chat, "DRAIN_S", 0.2)
    release = asyncio.Event()

    async def completions(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}
        await response.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())
        await release.wait()  # the body never ends
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        model = make_model(base_url=f"http://127.0.0.1:{port}/v1", timeout_s=30.0)
        result = await asyncio.wait_for(model.stream_chat(chat(), Collector()), 10)
        assert (result.text, result.error, result.finish_reason) == ("Hi", None, "stop")
    finally:
        release.set()
        await runner.cleanup()


def test_unknown_token_param_is_rejected() -> None:
    with pytest.raises(ValueError, match="token_limit_param"):
        OpenAIChatModel.from_settings("k", "http://127.0.0.1:9/v1", token_limit_param="max")


async def test_special_token_lookalikes_are_plain_text(
    fake: FakeOpenAI, make_model: ModelFactory
) -> None:
    messages = [{"role": "user", "content": "What is <|endoftext|> or <|im_start|>?"}]

    result = await make_model().stream_chat(chat(messages=messages), Collector())

    assert result.error is None
    assert "<|endoftext|>" in result.text
    assert result.usage is not None
    assert result.usage.prompt_tokens == TokenCounter(MODEL).count_messages(messages)


# -- retries before the stream opens ---------------------------------------------------


async def test_429_with_retry_after_zero_is_retried(
    fake: FakeOpenAI, make_model: ModelFactory
) -> None:
    # The SDK ignores "Retry-After: 0" and falls back to its backoff (about 0.4-0.5 s).
    fake.fail_with(status=429, retry_after=0)
    fake.replies.append(REPLY)

    result = await make_model(max_retries=2).stream_chat(chat(), Collector())

    assert result.error is None
    assert result.text == REPLY
    assert len(fake.requests) == 2
    assert [h.get("x-stainless-retry-count") for h in fake.request_headers] == ["0", "1"]


async def test_429_on_every_attempt_gives_rate_limit_message(
    fake: FakeOpenAI, make_model: ModelFactory
) -> None:
    fake.fail_with(status=429, retry_after=0.01, times=10)
    on_delta = Collector()

    result = await make_model(max_retries=2).stream_chat(chat(), on_delta)

    assert result.error == MSG_RATE_LIMITED
    assert result.text == ""
    assert result.usage is None
    assert not result.reached_model
    assert on_delta.deltas == []
    assert len(fake.requests) == 3


async def test_retry_after_beyond_two_minutes_is_not_retried(
    fake: FakeOpenAI, make_model: ModelFactory
) -> None:
    fake.fail_with(status=429, retry_after=600, times=10)

    result = await make_model(max_retries=3).stream_chat(chat(), Collector())

    assert result.error == MSG_RATE_LIMITED
    assert len(fake.requests) == 1


async def test_500_is_retried_then_succeeds(fake: FakeOpenAI, make_model: ModelFactory) -> None:
    fake.fail_with(status=500, retry_after_ms=10, times=2)
    fake.replies.append(REPLY)

    result = await make_model(max_retries=2).stream_chat(chat(), Collector())

    assert result.error is None
    assert result.text == REPLY
    assert len(fake.requests) == 3


async def test_500_on_every_attempt_gives_server_error(
    fake: FakeOpenAI, make_model: ModelFactory
) -> None:
    fake.fail_with(status=503, retry_after_ms=10, times=10)

    result = await make_model(max_retries=1).stream_chat(chat(), Collector())

    assert result.error == MSG_SERVER_ERROR
    assert result.usage is None
    assert not result.reached_model
    assert len(fake.requests) == 2


async def test_4xx_is_not_retried_and_reports_api_message(
    fake: FakeOpenAI, make_model: ModelFactory
) -> None:
    fake.fail_with(status=401, message="Incorrect API key provided: sk-test1234567890abcd.")

    result = await make_model(max_retries=3).stream_chat(chat(), Collector())

    assert result.error is not None
    assert "HTTP 401" in result.error
    assert "Incorrect API key provided: sk-***" in result.error
    assert "1234567890" not in result.error
    assert len(fake.requests) == 1


async def test_api_validation_error_is_reported(fake: FakeOpenAI, make_model: ModelFactory) -> None:
    result = await make_model().stream_chat(chat(model=""), Collector())

    assert result.error is not None
    assert "HTTP 400" in result.error
    assert "Invalid value for 'model'" in result.error


# -- timeouts and broken streams -------------------------------------------------------


async def test_slow_first_byte_times_out(fake: FakeOpenAI, make_model: ModelFactory) -> None:
    fake.slow_first_byte(2.0)
    started = time.monotonic()

    result = await make_model(timeout_s=0.5, max_retries=0).stream_chat(chat(), Collector())

    assert result.error == MSG_TIMEOUT
    assert result.usage is None
    assert not result.reached_model
    assert time.monotonic() - started < 1.5


async def test_stream_cut_keeps_partial_text(fake: FakeOpenAI, make_model: ModelFactory) -> None:
    model = make_model()
    whole = Collector()
    fake.replies.append(REPLY)
    await model.stream_chat(chat(), whole)

    fake.replies.append(REPLY)
    fake.cut_stream_after(3)
    partial = Collector()
    result = await model.stream_chat(chat(), partial)

    assert partial.deltas == whole.deltas[:3]
    assert result.text == "".join(whole.deltas[:3])
    assert result.usage is None
    assert result.error == MSG_CUT_OFF
    assert result.reached_model
    assert len(fake.requests) == 2  # never retried mid-stream


async def test_stream_cut_before_any_text(fake: FakeOpenAI, make_model: ModelFactory) -> None:
    fake.cut_stream_after(0)

    result = await make_model().stream_chat(chat(), Collector())

    assert result.text == ""
    assert result.error == MSG_CUT_OFF_EMPTY
    assert result.reached_model
    assert len(fake.requests) == 1


async def test_stalled_stream_times_out_mid_way(fake: FakeOpenAI, make_model: ModelFactory) -> None:
    fake.chunk_delay = 1.0

    result = await make_model(timeout_s=0.2, max_retries=2).stream_chat(chat(), Collector())

    assert result.error == MSG_CUT_OFF_EMPTY
    assert result.reached_model
    assert result.usage is None
    assert len(fake.requests) == 1


async def test_connection_refused(make_model: ModelFactory) -> None:
    async with FakeOpenAI() as gone:
        url = gone.base_url

    result = await make_model(base_url=url, max_retries=0).stream_chat(chat(), Collector())

    assert result.error == MSG_CONNECTION
    assert not result.reached_model


async def test_on_delta_errors_propagate(fake: FakeOpenAI, make_model: ModelFactory) -> None:
    async def broken(delta: str) -> None:
        raise RuntimeError("platform down")

    with pytest.raises(RuntimeError, match="platform down"):
        await make_model().stream_chat(chat(), broken)


# -- the fake itself -------------------------------------------------------------------


async def test_fake_checks_auth_and_validates(fake: FakeOpenAI) -> None:
    url = f"{fake.base_url}/chat/completions"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"model": MODEL, "messages": MESSAGES}) as resp:
            assert resp.status == 401
        headers = {"Authorization": "Bearer test-key"}
        async with session.post(url, json={"model": MODEL}, headers=headers) as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
        async with session.post(url, json={"messages": MESSAGES}, headers=headers) as resp:
            assert resp.status == 400
    assert error == {
        "message": "Missing required parameter: 'messages'.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "missing_required_parameter",
    }


async def test_fake_wire_format(fake: FakeOpenAI) -> None:
    fake.replies.append("Hi there, candidate.")
    body = {
        "model": MODEL,
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": "Bearer test-key"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.base_url}/chat/completions", json=body, headers=headers) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = (await resp.read()).decode()

    events = [block for block in raw.split("\n\n") if block]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    first, *content, last_content, usage_chunk = chunks
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert all(c["usage"] is None and c["choices"][0]["finish_reason"] is None for c in content)
    assert last_content["choices"][0]["finish_reason"] == "stop"
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == TokenCounter(MODEL).count_text(
        "Hi there, candidate."
    )
    assert usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage_chunk["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0


async def test_fake_non_streaming(fake: FakeOpenAI) -> None:
    fake.replies.append(REPLY)
    client = AsyncOpenAI(api_key="test-key", base_url=fake.base_url)
    try:
        completion = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_completion_tokens=5
        )
    finally:
        await client.close()

    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 5
    assert completion.choices[0].message.content == TokenCounter(MODEL).encoding.decode(
        TokenCounter(MODEL).encode(REPLY)[:5]
    )


# -- local servers without a key ------------------------------------------------------------


async def test_a_base_url_without_any_key_sends_a_placeholder_and_says_so_once(
    fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Ollama, LM Studio and vLLM need no key: `interview-buddy run` must not crash."""
    from bot.app import build_model
    from bot.settings import load_settings

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    caplog.set_level("INFO", logger="adapters.llm.openai_chat")
    model = build_model(load_settings(openai_base_url=fake.base_url, openai_api_key=None))
    assert isinstance(model, CircuitBreakerChatModel)  # the gateway behind its breaker
    gateway = model.inner
    assert isinstance(gateway, OpenAIChatModel)
    try:
        fake.replies.append("local answer")
        first = await model.stream_chat(chat(), Collector())
        second = await model.stream_chat(chat(), Collector())
    finally:
        await gateway.aclose()
    assert first.error is None and first.text == "local answer"
    assert second.error is None and second.text
    assert [h["Authorization"] for h in fake.request_headers] == ["Bearer no-key-set"] * 2
    notes = [r.getMessage() for r in caplog.records if "placeholder key" in r.getMessage()]
    assert len(notes) == 1 and fake.base_url in notes[0]


def test_without_a_base_url_or_key_the_offline_model_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from adapters.llm.offline import OfflineChatModel
    from bot.app import build_model
    from bot.settings import load_settings

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert isinstance(build_model(load_settings()), OfflineChatModel)
