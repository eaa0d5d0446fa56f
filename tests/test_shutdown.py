"""A clean stop of the engine: replies under way finish within the grace or are interrupted
cleanly, no new turn or job starts, and the process's leases and job claims are released
(process-level tests of the same: tests/test_crash_recovery.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from core import texts
from core.clock import ManualClock
from core.jobs import JobRunner
from core.models import Interview, Job, TurnStatus
from core.ports import ChatRequest, ChatResult, OnDelta, Usage
from core.tokens import TokenCounter
from storage import UnitOfWorkFactory
from tests.conftest import CANDIDATE, INTERVIEWER, Engine, make_engine
from tests.fakes.memory_uow import MemoryUnitOfWorkFactory


class GatedModel:
    """Streams a first piece, then waits for ``gate`` (forever unless opened)."""

    label: str | None = None

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        self.calls = 0

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        self.calls += 1
        await on_delta("Let me explain")
        self.started.set()
        await self.gate.wait()
        await on_delta(" it all.")
        counter = TokenCounter(request.model)
        prompt = counter.count_messages(list(request.messages))
        completion = counter.count_text("Let me explain it all.")
        return ChatResult("Let me explain it all.", Usage(prompt, completion), reached_model=True)


async def start(engine: Engine) -> Interview:
    return await engine.service.lifecycle.start(
        engine.workspace, INTERVIEWER, CANDIDATE, time_limit_s=600, token_budget=20_000
    )


async def say(engine: Engine, interview: Interview, text: str, msg_id: str) -> None:
    assert interview.room_key is not None
    await engine.service.turns.handle_message("test", interview.room_key, CANDIDATE, msg_id, text)


async def test_a_reply_that_finishes_within_the_grace_is_answered() -> None:
    model = GatedModel()
    engine = await make_engine(model)
    try:
        interview = await start(engine)
        talking = asyncio.create_task(say(engine, interview, "explain", "m1"))
        await model.started.wait()
        stopping = asyncio.create_task(engine.service.turns.stop(grace_s=10))
        await asyncio.sleep(0.05)
        assert not stopping.done()  # it waits for the reply
        model.gate.set()
        await asyncio.wait_for(stopping, 5)
        await talking
        (turn,) = await engine.store.list_turns(interview.id)
        assert turn.status is TurnStatus.ANSWERED and turn.reply == "Let me explain it all."
        assert engine.db.leases == {}
        # Stopping: a message that still arrives is stored and left to the next process.
        await say(engine, interview, "and then?", "m2")
        turns = await engine.store.list_turns(interview.id)
        assert [t.status for t in turns] == [TurnStatus.ANSWERED, TurnStatus.PENDING]
        assert model.calls == 1
    finally:
        await engine.service.close()


async def test_a_reply_that_outlasts_the_grace_is_interrupted_and_the_candidate_told() -> None:
    model = GatedModel()
    engine = await make_engine(model)
    try:
        interview = await start(engine)
        talking = asyncio.create_task(say(engine, interview, "explain", "m1"))
        await model.started.wait()
        await asyncio.wait_for(engine.service.turns.stop(grace_s=0.05), 5)
        assert talking.done() and talking.cancelled()
        (turn,) = await engine.store.list_turns(interview.id)
        assert turn.status is TurnStatus.FAILED and turn.error == texts.INTERRUPTED
        counter = TokenCounter("gpt-4o-mini")
        assert turn.charged_tokens == turn.prompt_tokens + counter.count_text("Let me explain")
        stored = await engine.store.get_interview(interview.id)
        assert stored is not None and stored.tokens_reserved == 0
        assert stored.tokens_used == turn.charged_tokens
        (reply,) = engine.platform.replies
        assert reply.failure == texts.failed(texts.INTERRUPTED, turn.charged_tokens)
        assert engine.platform.notice_texts()[-1] == texts.RESEND_AFTER_RESTART
        assert engine.db.leases == {}
    finally:
        await engine.service.close()


async def test_release_all_gives_up_this_process_claims_and_leases() -> None:
    uow = MemoryUnitOfWorkFactory()
    clock = ManualClock()
    runner = JobRunner(uow, clock, "me")
    now = clock.now()
    async with uow() as work:
        await work.jobs.schedule(Job("tick", "tick:a", now, {}))
        await work.jobs.schedule(Job("tick", "tick:b", now, {}))
        await work.jobs.claim_due("me", now, now + timedelta(seconds=60), 1, key="tick:a")
        await work.jobs.claim_due("other", now, now + timedelta(seconds=60), 1, key="tick:b")
        assert await work.leases.take("interview:1", "me", now, now + timedelta(seconds=30))
        assert await work.leases.take("interview:2", "other", now, now + timedelta(seconds=30))
        await work.commit()
    assert await runner.release_all() == (1, 1)
    async with uow() as work:
        # Free at once for another process; the other process's claim and lease stay.
        taken = await work.jobs.claim_due("next", now, now + timedelta(seconds=60), 5)
        assert [job.key for job in taken] == ["tick:a"]
        assert await work.leases.take("interview:1", "next", now, now + timedelta(seconds=30))
        assert not await work.leases.take("interview:2", "next", now, now + timedelta(seconds=30))


async def test_a_job_that_outlives_its_claim_is_not_run_twice_by_its_process() -> None:
    uow = MemoryUnitOfWorkFactory()
    clock = ManualClock()
    runner = JobRunner(uow, clock, "me", claim_s=1)
    gate = asyncio.Event()
    runs: list[str] = []

    async def slow(job: Job) -> None:
        runs.append(job.key)
        await gate.wait()

    runner.on("slow", slow)
    await runner.schedule(Job("slow", "slow:1", clock.now(), {}))
    first = asyncio.create_task(runner.run_due())
    await asyncio.sleep(0.01)
    clock.advance(5)  # the claim expired while the job runs
    assert await runner.run_due() == 0  # claimed again (renewed), not run again
    gate.set()
    assert await first == 1
    assert runs == ["slow:1"]
    async with uow() as work:
        job = await work.jobs.get("slow:1")
    assert job is not None and job.done_at is not None and job.claimed_by is None


async def test_stopped_runner_claims_nothing_and_waits_for_jobs_under_way() -> None:
    uow = MemoryUnitOfWorkFactory()
    clock = ManualClock()
    runner = JobRunner(uow, clock, "me")
    gate = asyncio.Event()

    async def slow(job: Job) -> None:
        await gate.wait()

    runner.on("slow", slow)
    await runner.schedule(Job("slow", "slow:1", clock.now(), {}))
    running = asyncio.create_task(runner.run_due())
    await asyncio.sleep(0.01)
    await runner.schedule(Job("slow", "slow:2", clock.now(), {}))
    stopping = asyncio.create_task(runner.stop(timeout_s=5))
    await asyncio.sleep(0.05)
    assert not stopping.done()
    gate.set()
    await asyncio.wait_for(stopping, 5)
    assert await running == 1
    assert await runner.run_due() == 0 and not await runner.run_now("slow:2")
    async with uow() as work:
        waiting = await work.jobs.get("slow:2")
    assert waiting is not None and waiting.done_at is None and waiting.claimed_by is None


async def test_sql_release_claims_and_leases_of_one_owner(database: UnitOfWorkFactory) -> None:
    clock = ManualClock()
    now = clock.now()
    async with database() as work:
        await work.jobs.schedule(Job("tick", "tick:a", now, {}))
        await work.jobs.schedule(Job("tick", "tick:b", now, {}))
        await work.jobs.schedule(Job("tick", "tick:c", now, {}))
        await work.jobs.claim_due("me", now, now + timedelta(seconds=60), 1, key="tick:a")
        await work.jobs.claim_due("other", now, now + timedelta(seconds=60), 1, key="tick:b")
        (done,) = await work.jobs.claim_due("me", now, now + timedelta(seconds=60), 1, "tick:c")
        await work.jobs.finish(done, now)
        assert await work.leases.take("interview:1", "me", now, now + timedelta(seconds=30))
        assert await work.leases.take("interview:3", "me", now, now + timedelta(seconds=30))
        assert await work.leases.take("interview:2", "other", now, now + timedelta(seconds=30))
        await work.commit()
    async with database() as work:
        assert await work.jobs.release_claims("me") == 1
        assert await work.leases.release_all("me") == 2
        await work.commit()
    async with database() as work:
        taken = await work.jobs.claim_due("next", now, now + timedelta(seconds=60), 5)
        assert [job.key for job in taken] == ["tick:a"]
        assert await work.leases.holder("interview:1", now) is None
        assert await work.leases.holder("interview:2", now) is not None
