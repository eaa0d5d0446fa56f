"""The engine over the real SQL store and the real OpenAI gateway against the fake server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio

from core.clock import ManualClock
from adapters.llm.openai_chat import OpenAIChatModel
from core.models import EndReason, Interview, Status, TurnStatus
from core.service import InterviewService
from core.tokens import TokenCounter
from storage import SqlStore
from tests.conftest import CANDIDATE, INTERVIEWER
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.recording_platform import RecordingPlatform


@pytest_asyncio.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def build(
    store: SqlStore, fake: FakeOpenAI, clock: ManualClock
) -> tuple[InterviewService, RecordingPlatform]:
    platform = RecordingPlatform()
    model = OpenAIChatModel.from_settings("sk-test", fake.base_url, timeout_s=5, max_retries=1)
    return InterviewService(store, model, clock, {"test": platform}), platform


async def begin(service: InterviewService, store: SqlStore, budget: int) -> Interview:
    workspace = await store.get_or_create_workspace("test", "T1")
    return await service.start(workspace, INTERVIEWER, CANDIDATE, token_budget=budget)


async def test_turns_are_charged_what_the_api_reports(
    store: SqlStore, fake_openai: FakeOpenAI
) -> None:
    service, platform = build(store, fake_openai, ManualClock())
    try:
        interview = await begin(service, store, 20_000)
        assert interview.room_key
        for i in range(3):
            await service.handle_message(
                "test", interview.room_key, CANDIDATE, f"m{i}", f"question {i}"
            )
        turns = await store.list_turns(interview.id)
        counter = TokenCounter("gpt-4o-mini")
        for turn, request in zip(turns, fake_openai.requests, strict=True):
            assert turn.status is TurnStatus.ANSWERED and turn.usage_reported
            assert turn.prompt_tokens == counter.count_messages(request["messages"])
            assert turn.completion_tokens == counter.count_text(turn.reply)
            assert request["max_completion_tokens"] + turn.prompt_tokens <= 20_000
        stored = await store.get_interview(interview.id)
        assert stored is not None and stored.tokens_used == sum(t.charged_tokens for t in turns)
        assert [r.text for r in platform.replies] == [t.reply for t in turns]
    finally:
        await service.close()


async def test_concurrent_messages_never_overspend(
    store: SqlStore, fake_openai: FakeOpenAI
) -> None:
    service, _ = build(store, fake_openai, ManualClock())
    try:
        interview = await begin(service, store, 3000)
        assert interview.room_key
        room = interview.room_key
        await asyncio.gather(
            *(
                service.handle_message("test", room, CANDIDATE, f"m{i % 12}", f"q{i}")
                for i in range(18)
            )
        )
        stored = await store.get_interview(interview.id)
        turns = await store.list_turns(interview.id)
        assert stored is not None and stored.tokens_used <= 3000
        assert stored.status is Status.ENDED and stored.end_reason is EndReason.TOKENS_EXHAUSTED
        assert len(turns) == 12  # the six redeliveries were dropped
        assert stored.tokens_used == sum(t.charged_tokens for t in turns)
        # one call at a time: the server saw every request after the previous one finished
        assert len(fake_openai.requests) == sum(t.status is TurnStatus.ANSWERED for t in turns)
    finally:
        await service.close()


async def test_a_cut_stream_charges_prompt_plus_received_text(
    store: SqlStore, fake_openai: FakeOpenAI
) -> None:
    service, platform = build(store, fake_openai, ManualClock())
    try:
        interview = await begin(service, store, 20_000)
        assert interview.room_key
        fake_openai.cut_stream_after(3)
        await service.handle_message("test", interview.room_key, CANDIDATE, "m1", "explain")
        (turn,) = await store.list_turns(interview.id)
        counter = TokenCounter("gpt-4o-mini")
        assert turn.status is TurnStatus.FAILED and not turn.usage_reported and turn.reply
        assert turn.charged_tokens == turn.prompt_tokens + counter.count_text(turn.reply)
        assert platform.replies[0].failure and "cut off" in platform.replies[0].failure
        fake_openai.fail_with(status=500, times=5)
        await service.handle_message("test", interview.room_key, CANDIDATE, "m2", "again")
        second = (await store.list_turns(interview.id))[1]
        assert second.status is TurnStatus.FAILED and second.charged_tokens == 0
    finally:
        await service.close()


async def test_restart_rearms_the_deadline(store: SqlStore, fake_openai: FakeOpenAI) -> None:
    clock = ManualClock()
    service, _ = build(store, fake_openai, clock)
    interview = await begin(service, store, 20_000)
    await service.close()  # the process dies; the timer is gone
    clock.advance(interview.time_limit_s + 5)
    restarted, platform = build(store, fake_openai, clock)
    try:
        await restarted.recover()
        await restarted.settle()
        stored = await store.get_interview(interview.id)
        assert stored is not None and stored.end_reason is EndReason.TIME_UP
        assert platform.closed and platform.closed[0][0] == interview.id
    finally:
        await restarted.close()
