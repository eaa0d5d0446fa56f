"""The engine over the real units of work and the real OpenAI gateway against the fake server,
including two engines (as two processes would be) sharing one database."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import event

from adapters.llm.judge import OpenAIJudge
from adapters.llm.openai_chat import OpenAIChatModel
from adapters.report_chart import render_chart
from bench.fakes.openai_server import FakeOpenAI
from core.clock import ManualClock
from core.models import EndReason, Interview, Status, Turn, TurnStatus
from core.service import InterviewService
from core.tokens import TokenCounter
from core.turns import lease_key
from storage import UnitOfWorkFactory, create_uow_factory
from tests.conftest import CANDIDATE, INTERVIEWER, Backend
from tests.fakes.judge_answers import valid_answer
from tests.fakes.recording_platform import RecordingPlatform
from tests.fakes.store_view import StoreView


@pytest_asyncio.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as fake:
        yield fake


def build(
    database: UnitOfWorkFactory, fake: FakeOpenAI, clock: ManualClock, owner: str = "p1"
) -> tuple[InterviewService, RecordingPlatform]:
    platform = RecordingPlatform()
    model = OpenAIChatModel.from_settings("sk-test", fake.base_url, timeout_s=5, max_retries=1)
    service = InterviewService(
        database,
        model,
        clock,
        {"test": platform},
        owner=owner,
        judge=OpenAIJudge(model.client),
        render_chart=render_chart,
    )
    return service, platform


async def begin(service: InterviewService, budget: int, **kw: Any) -> Interview:
    workspace = await service.queries.workspace("test", "T1")
    return await service.lifecycle.start(
        workspace, INTERVIEWER, CANDIDATE, token_budget=budget, **kw
    )


async def test_turns_are_charged_what_the_api_reports(
    database: UnitOfWorkFactory, fake_openai: FakeOpenAI
) -> None:
    service, platform = build(database, fake_openai, ManualClock())
    store = StoreView(database)
    try:
        interview = await begin(service, 20_000)
        assert interview.room_key
        for i in range(3):
            await service.turns.handle_message(
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
        assert stored.tokens_reserved == 0
        assert [r.text for r in platform.replies] == [t.reply for t in turns]
    finally:
        await service.close()


async def test_concurrent_messages_never_overspend(
    database: UnitOfWorkFactory, fake_openai: FakeOpenAI
) -> None:
    service, _ = build(database, fake_openai, ManualClock())
    store = StoreView(database)
    try:
        interview = await begin(service, 3000)
        assert interview.room_key
        room = interview.room_key
        await asyncio.gather(
            *(
                service.turns.handle_message("test", room, CANDIDATE, f"m{i % 12}", f"q{i}")
                for i in range(18)
            )
        )
        await service.settle()
        stored = await store.get_interview(interview.id)
        turns = await store.list_turns(interview.id)
        assert stored is not None and stored.tokens_used <= 3000
        assert stored.status is Status.ENDED and stored.end_reason is EndReason.TOKENS_EXHAUSTED
        assert len(turns) == 12  # the six redeliveries were dropped
        assert stored.tokens_used == sum(t.charged_tokens for t in turns)
        assert len(fake_openai.requests) == sum(t.status is TurnStatus.ANSWERED for t in turns)
    finally:
        await service.close()


async def test_a_cut_stream_charges_prompt_plus_received_text(
    database: UnitOfWorkFactory, fake_openai: FakeOpenAI
) -> None:
    service, platform = build(database, fake_openai, ManualClock())
    store = StoreView(database)
    try:
        interview = await begin(service, 20_000)
        assert interview.room_key
        fake_openai.cut_stream_after(3)
        await service.turns.handle_message("test", interview.room_key, CANDIDATE, "m1", "explain")
        (turn,) = await store.list_turns(interview.id)
        counter = TokenCounter("gpt-4o-mini")
        assert turn.status is TurnStatus.FAILED and not turn.usage_reported and turn.reply
        assert turn.charged_tokens == turn.prompt_tokens + counter.count_text(turn.reply)
        assert platform.replies[0].failure and "cut off" in platform.replies[0].failure
        fake_openai.fail_with(status=500, times=5)
        await service.turns.handle_message("test", interview.room_key, CANDIDATE, "m2", "again")
        second = (await store.list_turns(interview.id))[1]
        assert second.status is TurnStatus.FAILED and second.charged_tokens == 0
        stored = await store.get_interview(interview.id)
        assert stored is not None and stored.tokens_reserved == 0
    finally:
        await service.close()


async def test_restart_closes_what_ran_out_meanwhile(
    database: UnitOfWorkFactory, fake_openai: FakeOpenAI
) -> None:
    clock = ManualClock()
    service, _ = build(database, fake_openai, clock)
    interview = await begin(service, 20_000)
    await service.close()  # the process dies
    clock.advance(interview.time_limit_s + 5)
    restarted, platform = build(database, fake_openai, clock, owner="p2")
    try:
        await restarted.recover()
        stored = await StoreView(database).get_interview(interview.id)
        assert stored is not None and stored.end_reason is EndReason.TIME_UP
        assert platform.closed and platform.closed[0][0] == interview.id
    finally:
        await restarted.close()


# ---- two engines, one database: as two processes -------------------------------------------


@pytest_asyncio.fixture
async def second_database(backend: Backend) -> AsyncIterator[UnitOfWorkFactory]:
    """Another engine on the same database (its own pool, as another process has)."""
    if backend.name == "sqlite":
        pytest.skip("SQLite serves one process; two processes need PostgreSQL")
    factory = create_uow_factory(backend.url, connect_args=backend.connect_args)
    yield factory
    await factory.close()


@asynccontextmanager
async def two_processes(
    first: UnitOfWorkFactory, second: UnitOfWorkFactory, fake: FakeOpenAI
) -> AsyncIterator[tuple[InterviewService, InterviewService, RecordingPlatform, ManualClock]]:
    """Engines A and B on one database, one clock, one platform (one workspace)."""
    clock = ManualClock()
    a, platform = build(first, fake, clock, owner="A")
    b, _ = build(second, fake, clock, owner="B")
    b.platforms["test"] = platform
    try:
        yield a, b, platform, clock
    finally:
        await a.close()
        await b.close()


async def test_two_processes_never_overspend_and_answer_in_order(
    database: UnitOfWorkFactory, second_database: UnitOfWorkFactory
) -> None:
    """Messages of one interview delivered alternately and at once to two engines."""
    async with (
        FakeOpenAI(tokens_per_chunk=2, chunk_delay=0.01) as fake,
        two_processes(database, second_database, fake) as (a, b, platform_a, _),
    ):
        interview = await begin(a, 3000)
        assert interview.room_key
        room = interview.room_key
        sends = [
            (a if i % 2 == 0 else b).turns.handle_message(
                "test", room, CANDIDATE, f"m{i}", f"question {i}"
            )
            for i in range(10)
        ]
        await asyncio.gather(*sends)
        # a turn left to the other process's lease is answered by its drain; settle both
        for _ in range(3):
            await a.settle()
            await b.settle()
            await a.sweep()
            await b.sweep()
        store = StoreView(database)
        stored = await store.get_interview(interview.id)
        turns = await store.list_turns(interview.id)
        assert stored is not None and stored.tokens_used <= 3000
        assert stored.tokens_reserved == 0
        assert stored.tokens_used == sum(t.charged_tokens for t in turns)
        assert all(t.status not in (TurnStatus.PENDING, TurnStatus.STREAMING) for t in turns)
        answered = [t for t in turns if t.status is TurnStatus.ANSWERED]
        assert len(fake.requests) == len(answered) >= 2
        # one at a time, in arrival order: each prompt holds every earlier answered turn
        for earlier, later in itertools.pairwise(answered):
            assert later.seq > earlier.seq
            assert later.prompt_tokens > earlier.prompt_tokens + earlier.completion_tokens - 1
        assert len(platform_a.replies) == len(answered) + sum(
            t.status is TurnStatus.FAILED for t in turns
        )


async def test_two_processes_close_an_idle_interview_once(
    database: UnitOfWorkFactory, second_database: UnitOfWorkFactory, fake_openai: FakeOpenAI
) -> None:
    async with two_processes(database, second_database, fake_openai) as (a, b, platform, clock):
        interview = await begin(a, 20_000, time_limit_s=600)
        clock.advance(601)
        await asyncio.gather(a.sweep(), b.sweep(), a.sweep(), b.sweep())
        await a.settle()
        await b.settle()
        stored = await StoreView(database).get_interview(interview.id)
        assert stored is not None and stored.end_reason is EndReason.TIME_UP
        assert [i for i, _ in platform.closed] == [interview.id]  # one closing note
        ended = [e for e in await StoreView(database).list_audit(interview.id) if e.kind == "ended"]
        assert len(ended) == 1


async def test_a_dead_holders_turn_is_taken_over_after_its_lease_expires(
    database: UnitOfWorkFactory, second_database: UnitOfWorkFactory, fake_openai: FakeOpenAI
) -> None:
    async with two_processes(database, second_database, fake_openai) as (a, b, platform, clock):
        interview = await begin(a, 20_000)
        assert interview.room_key
        # What a SIGKILLed process A leaves behind mid-reply: the turn streaming, its
        # reservation held, the lease A took (not renewed any more).
        now = clock.now()
        dying = Turn(
            interview_id=interview.id,
            author_id=CANDIDATE,
            content="long one",
            platform_message_id="m1",
            created_at=now,
            status=TurnStatus.STREAMING,
            prompt_tokens=400,
            reserved_tokens=20_000,
        )
        async with database() as uow:
            await uow.interviews.add_turn(dying)
            assert await uow.interviews.reserve(interview.id, 20_000)
            assert await uow.leases.take(
                lease_key(interview.id), "A", now, now + timedelta(seconds=a.config.lease_s)
            )
            await uow.commit()
        await b.turns.handle_message("test", interview.room_key, CANDIDATE, "m2", "next")
        store = StoreView(database)
        first, second = await store.list_turns(interview.id)
        assert (first.status, second.status) == (TurnStatus.STREAMING, TurnStatus.PENDING)
        assert fake_openai.requests == []  # B left it to the lease holder...
        clock.advance(a.config.lease_s + 2)  # ...until the lease expired: B's job is due
        await b.sweep()
        await b.settle()
        first, second = await store.list_turns(interview.id)
        assert first.status is TurnStatus.FAILED and "restart" in (first.error or "")
        assert second.status is TurnStatus.ANSWERED
        assert len(fake_openai.requests) == 1
        stored = await store.get_interview(interview.id)
        assert stored is not None and stored.tokens_reserved == 0
        assert first.charged_tokens == 400  # the prompt reached the API
        assert stored.tokens_used == first.charged_tokens + second.charged_tokens
        assert "please send it again" in " ".join(platform.notice_texts())


# ---- statements per turn --------------------------------------------------------------------


async def _statements_for_one_turn(
    database: UnitOfWorkFactory, fake: FakeOpenAI, history: int
) -> int:
    service, _ = build(database, fake, ManualClock())
    try:
        workspace = await service.queries.workspace("test", "T1")
        interview = await service.lifecycle.start(
            workspace, INTERVIEWER, f"U-{history}", token_budget=10_000_000
        )
        assert interview.room_key
        author = interview.candidate_id
        async with database() as uow:  # an answered history of this length
            for i in range(history):
                await uow.interviews.add_turn(
                    Turn(
                        interview_id=interview.id,
                        author_id=author,
                        content="q",
                        platform_message_id=f"h{i}",
                        created_at=interview.created_at,
                        status=TurnStatus.ANSWERED,
                        reply="ok",
                    )
                )
            await uow.commit()
        count = 0

        def counted(*_: object) -> None:
            nonlocal count
            count += 1

        engine = database.engine.sync_engine
        event.listen(engine, "before_cursor_execute", counted)
        fake.replies.append("ok")
        try:
            await service.turns.handle_message("test", interview.room_key, author, "x", "q")
        finally:
            event.remove(engine, "before_cursor_execute", counted)
        return count
    finally:
        await service.close()


async def test_statements_per_turn_do_not_grow_with_the_history(
    database: UnitOfWorkFactory,
) -> None:
    async with FakeOpenAI(tokens_per_chunk=50) as fake:
        short = await _statements_for_one_turn(database, fake, 10)
        long = await _statements_for_one_turn(database, fake, 200)
    assert short == long <= 16, (short, long)  # 16 here (17 before the locked row was kept)


async def test_two_processes_send_each_reminder_and_summary_once_and_start_once(
    database: UnitOfWorkFactory, second_database: UnitOfWorkFactory, fake_openai: FakeOpenAI
) -> None:
    async with two_processes(database, second_database, fake_openai) as (a, b, platform, clock):
        workspace = await a.queries.workspace("test", "T1")
        workspace = await a.queries.update_settings(
            workspace, timezone="Europe/Berlin", team_channel="CTEAM"
        )
        program, occurrences = await a.programs.schedule(workspace, INTERVIEWER, CANDIDATE, weeks=1)
        await a.summaries.arm(workspace)
        await b.summaries.arm(workspace)  # both processes arm it: still one job
        end = occurrences[0].at + timedelta(days=1)
        while clock.now() < end:
            async with database() as uow:
                due = await uow.jobs.next_due()
            step = end if due is None or due > end else max(due, clock.now())
            clock.advance(step - clock.now())
            await asyncio.gather(a.sweep(), b.sweep(), a.sweep(), b.sweep())
            await a.settle()
            await b.settle()
        dms = [(who, text) for who, text in platform.notices if who in (CANDIDATE, "U_INT")]
        for who in (CANDIDATE, "U_INT"):
            for words in ("24 hours", "1 hour", "5 minutes"):
                assert sum(w == who and f"starts in {words}" in t for w, t in dms) == 1
        team = [t for who, t in platform.notices if who == "CTEAM"]
        assert sum("Tomorrow" in t for t in team) == 1
        # Fridays 17:00 Berlin in the walk: Jan 2 and Jan 9, each summary once
        assert [t.split("before ", 1)[1][:17] for t in team if t.startswith("📊")] == [
            "<when 2026-01-02T",
            "<when 2026-01-09T",
        ]
        assert len(platform.rooms) == 1  # the occurrence started once
        async with database() as uow:
            (occurrence, *_) = await uow.programs.occurrences(program.id)
        assert occurrence.interview_id in platform.rooms


async def test_two_processes_build_and_deliver_one_report(
    database: UnitOfWorkFactory, second_database: UnitOfWorkFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.structured_default = valid_answer
    async with two_processes(database, second_database, fake_openai) as (a, b, platform, _):
        interview = await begin(a, 20_000)
        assert interview.room_key
        await a.turns.handle_message("test", interview.room_key, CANDIDATE, "m1", "Plan first?")
        await a.lifecycle.end(INTERVIEWER, interview.id)
        await asyncio.gather(a.sweep(), b.sweep(), a.sweep(), b.sweep())
        for _ in range(2):
            await a.settle()
            await b.settle()
            await asyncio.gather(a.sweep(), b.sweep())
        ((_, view, files),) = platform.reports
        assert view.signal == "yes" and files[0].content.startswith(b"\x89PNG")
        judged = [r for r in fake_openai.requests if "response_format" in r]
        assert len(judged) == 1  # one process evaluated
        async with database() as uow:
            report = await uow.reports.for_interview(interview.id)
            assert report is not None and report.delivered_at is not None
            assert report.delivery["ref"] == "report-1"
            assert report.chart_png == files[0].content  # bytes survive the round trip
            assert not await uow.reports.add(report)  # one per interview
            latest = await uow.reports.latest_for_candidate(interview.workspace_id, CANDIDATE)
            assert latest is not None and latest.id == report.id
