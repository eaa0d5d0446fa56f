"""Rate limits: per interview at most CANDIDATE_MESSAGES_PER_MINUTE messages go to the model,
per workspace at most WORKSPACE_LLM_CALLS_PER_MINUTE model calls; over a limit the message
is refused with a notice and costs nothing. Each limit is a bucket of a minute's worth that
refills continuously (N at once, then one every 60/N s), kept in the database so that every
process shares it. The engine on the manual clock, the SQL limiter, and the bot end to end."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from adapters.llm.offline import OfflineChatModel
from adapters.slack.limiter import MemoryRateLimiter
from core import texts
from core.clock import ManualClock
from core.context import EngineConfig
from core.models import Interview, TurnStatus, Workspace
from core.ports import RateLimiter
from core.service import InterviewService
from core.turns import RATE_NOTICE_S
from storage import SqlRateLimiter, UnitOfWorkFactory, create_uow_factory
from tests.conftest import CANDIDATE, INTERVIEWER, Backend
from tests.fakes.memory_uow import MemoryUnitOfWorkFactory
from tests.fakes.rate_limiter import ManualRateLimiter
from tests.fakes.recording_platform import RecordingPlatform
from tests.fakes.store_view import StoreView
from tests.test_slack import open_interview as open_slack_interview
from tests.test_slack import slack_world

OTHER = "U_CAND2"


class Engine:
    """The service on in-memory fakes with a limiter on the manual clock."""

    def __init__(self, **config: object) -> None:
        self.clock = ManualClock()
        self.uow = MemoryUnitOfWorkFactory()
        self.platform = RecordingPlatform()
        self.limiter = ManualRateLimiter(self.clock)
        self.service = InterviewService(
            self.uow,
            OfflineChatModel(),
            self.clock,
            {"test": self.platform},
            EngineConfig(**config),  # type: ignore[arg-type]
            owner="test-process",
            limiter=self.limiter,
        )
        self.store = StoreView(self.uow)

    async def start(self, candidate: str = CANDIDATE, budget: int = 500_000) -> Interview:
        workspace = await self.store.get_or_create_workspace("test", "T1")
        return await self.service.lifecycle.start(
            workspace, INTERVIEWER, candidate, token_budget=budget, time_limit_s=3 * 3600
        )

    async def say(self, interview: Interview, text: str, msg_id: str) -> None:
        assert interview.room_key is not None
        await self.service.turns.handle_message(
            "test", interview.room_key, interview.candidate_id, msg_id, text
        )

    async def statuses(self, interview: Interview) -> list[TurnStatus]:
        return [t.status for t in await self.store.list_turns(interview.id)]

    async def used(self, interview: Interview) -> int:
        stored = await self.store.get_interview(interview.id)
        assert stored is not None and stored.tokens_reserved == 0
        return stored.tokens_used

    def notices(self, interview: Interview) -> list[str]:
        return [text for who, text in self.platform.notices if who == interview.id]


# ---- the candidate's limit ------------------------------------------------------------------


async def test_the_21st_message_within_a_minute_is_refused_until_time_passes() -> None:
    engine = Engine()  # the defaults: 20 a minute per candidate, 300 per workspace
    interview = await engine.start()
    # 20 messages within the same second: all answered, one at a time, in order
    await asyncio.gather(*(engine.say(interview, f"question {i}", f"m{i}") for i in range(20)))
    await engine.service.settle()
    turns = await engine.store.list_turns(interview.id)
    assert [t.status for t in turns] == [TurnStatus.ANSWERED] * 20
    assert [t.seq for t in turns] == list(range(1, 21))
    for earlier, later in itertools.pairwise(turns):
        assert later.prompt_tokens > earlier.prompt_tokens + earlier.completion_tokens - 1
    used = await engine.used(interview)
    assert used == sum(t.charged_tokens for t in turns) <= interview.token_budget

    await engine.say(interview, "question 21", "m21")
    (turn,) = (await engine.store.list_turns(interview.id))[20:]
    assert turn.status is TurnStatus.REFUSED and turn.error == texts.too_fast_error(20)
    assert turn.content == "question 21" and turn.charged_tokens == 0
    assert engine.notices(interview)[-1] == (
        "⏳ You're sending messages faster than 20 a minute, so this one wasn't sent to the AI "
        "assistant and nothing was charged. Wait a few seconds and send it again."
    )
    assert await engine.used(interview) == used
    replies = len(engine.platform.replies)
    assert replies == 20

    # a flood is refused without a flood of notices
    for i in range(22, 26):
        await engine.say(interview, f"question {i}", f"m{i}")
    assert sum(n == texts.too_fast(20) for n in engine.notices(interview)) == 1
    assert (await engine.statuses(interview))[20:] == [TurnStatus.REFUSED] * 5

    # one slot comes back every 3 s (60 / 20): one message, then refused again
    engine.clock.advance(3)
    await engine.say(interview, "after three seconds", "m26")
    await engine.say(interview, "and right away again", "m27")
    assert (await engine.statuses(interview))[25:] == [TurnStatus.ANSWERED, TurnStatus.REFUSED]
    assert len(engine.platform.replies) == replies + 1
    # 10 s later three more slots are back (10 // 3), and the next refusal is told again:
    # at most one notice every RATE_NOTICE_S
    engine.clock.advance(RATE_NOTICE_S)
    for i in range(28, 32):
        await engine.say(interview, f"question {i}", f"m{i}")
    assert (await engine.statuses(interview))[27:] == [TurnStatus.ANSWERED] * 3 + [
        TurnStatus.REFUSED
    ]
    assert sum(n == texts.too_fast(20) for n in engine.notices(interview)) == 2

    # after a quiet minute the whole burst is back
    engine.clock.advance(60)
    for i in range(32, 52):
        await engine.say(interview, f"question {i}", f"m{i}")
    assert (await engine.statuses(interview))[31:] == [TurnStatus.ANSWERED] * 20
    assert set(engine.limiter.keys("candidate:")) == {f"candidate:{interview.id}"}
    await engine.service.close()


async def test_the_limit_is_per_interview_and_its_setting_counts() -> None:
    engine = Engine(candidate_messages_per_minute=2)
    first = await engine.start()
    second = await engine.start(OTHER)
    for i in range(3):
        await engine.say(first, f"question {i}", f"a{i}")
    await engine.say(second, "my own question", "b0")
    assert await engine.statuses(first) == [TurnStatus.ANSWERED] * 2 + [TurnStatus.REFUSED]
    assert await engine.statuses(second) == [TurnStatus.ANSWERED]
    assert engine.notices(first)[-1] == texts.too_fast(2)
    assert texts.too_fast(2) not in engine.notices(second)
    engine.clock.advance(29)  # a slot every 30 s: not yet
    await engine.say(first, "too soon", "a3")
    engine.clock.advance(1)
    await engine.say(first, "now", "a4")
    assert (await engine.statuses(first))[3:] == [TurnStatus.REFUSED, TurnStatus.ANSWERED]
    await engine.service.close()


async def test_zero_means_no_limit() -> None:
    engine = Engine(candidate_messages_per_minute=0, workspace_llm_calls_per_minute=0)
    interview = await engine.start()
    for i in range(30):
        await engine.say(interview, f"question {i}", f"m{i}")
    assert await engine.statuses(interview) == [TurnStatus.ANSWERED] * 30
    assert engine.limiter.tries == []
    await engine.service.close()


async def test_a_redelivered_refused_message_is_stored_and_told_once() -> None:
    engine = Engine(candidate_messages_per_minute=1)
    interview = await engine.start()
    await engine.say(interview, "first", "m1")
    for _ in range(3):
        await engine.say(interview, "second", "m2")
    assert await engine.statuses(interview) == [TurnStatus.ANSWERED, TurnStatus.REFUSED]
    assert engine.notices(interview).count(texts.too_fast(1)) == 1
    await engine.service.close()


# ---- the workspace's limit -----------------------------------------------------------------


async def test_the_workspace_limit_counts_model_calls_of_every_interview() -> None:
    engine = Engine(candidate_messages_per_minute=0, workspace_llm_calls_per_minute=3)
    first = await engine.start()
    second = await engine.start(OTHER)
    await engine.say(first, "question 1", "a1")
    await engine.say(second, "question 1", "b1")
    await engine.say(first, "question 2", "a2")
    used = await engine.used(first), await engine.used(second)
    await engine.say(second, "question 2", "b2")
    await engine.say(first, "question 3", "a3")
    assert await engine.statuses(first) == [TurnStatus.ANSWERED] * 2 + [TurnStatus.REFUSED]
    assert await engine.statuses(second) == [TurnStatus.ANSWERED, TurnStatus.REFUSED]
    for interview in (first, second):
        assert engine.notices(interview)[-1] == texts.workspace_busy(3)
        last = (await engine.store.list_turns(interview.id))[-1]
        assert last.error == texts.workspace_busy_error(3) and last.charged_tokens == 0
    assert (await engine.used(first), await engine.used(second)) == used
    assert len(engine.platform.replies) == 3
    workspace = await engine.store.get_or_create_workspace("test", "T1")
    assert set(engine.limiter.keys("llm:")) == {f"llm:{workspace.id}"}
    engine.clock.advance(20)  # one call every 20 s
    await engine.say(second, "question 3", "b3")
    await engine.say(first, "question 4", "a4")
    assert (await engine.statuses(second))[-1] is TurnStatus.ANSWERED
    assert (await engine.statuses(first))[-1] is TurnStatus.REFUSED
    await engine.service.close()


async def test_a_message_that_does_not_fit_the_budget_takes_no_workspace_slot() -> None:
    engine = Engine(candidate_messages_per_minute=0, workspace_llm_calls_per_minute=1)
    tiny = await engine.start(budget=1000)
    roomy = await engine.start(candidate="U2")
    await engine.say(tiny, "word " * 1500, "t1")  # within 8,000 characters, not the budget
    assert await engine.statuses(tiny) == [TurnStatus.REFUSED]
    assert (await engine.store.list_turns(tiny.id))[0].error is None  # the budget's refusal
    # The workspace's one call of the minute is still free (taken, then given back).
    await engine.say(roomy, "question", "r1")
    assert await engine.statuses(roomy) == [TurnStatus.ANSWERED]
    await engine.say(roomy, "question 2", "r2")
    assert await engine.statuses(roomy) == [TurnStatus.ANSWERED, TurnStatus.REFUSED]
    await engine.service.close()


# ---- try_acquire on every backend -----------------------------------------------------------


def sql_limiter(database: UnitOfWorkFactory, now: list[float]) -> SqlRateLimiter:
    return SqlRateLimiter(database.engine, clock=lambda: now[0])


async def test_try_acquire_takes_the_burst_then_one_slot_per_interval(
    backend: Backend, database: UnitOfWorkFactory
) -> None:
    now = [1_767_366_000.0]
    limiters: list[RateLimiter] = [
        MemoryRateLimiter(lambda: now[0]),
        sql_limiter(database, now),
    ]
    for limiter in limiters:
        taken = [await limiter.try_acquire("candidate:x", 20 / 60, 20) for _ in range(25)]
        assert taken == [True] * 20 + [False] * 5
        now[0] += 2.9  # not yet a whole interval (3 s)
        assert not await limiter.try_acquire("candidate:x", 20 / 60, 20)
        now[0] += 0.1
        # refusals took nothing: exactly one slot came back
        assert [await limiter.try_acquire("candidate:x", 20 / 60, 20) for _ in range(3)] == [
            True,
            False,
            False,
        ]
        assert await limiter.try_acquire("candidate:y", 20 / 60, 20)  # keys are independent
        now[0] += 60
        assert [await limiter.try_acquire("candidate:x", 20 / 60, 20) for _ in range(21)] == [
            True
        ] * 20 + [False]
        now[0] += 1000


async def test_a_slot_given_back_can_be_taken_again_once(
    backend: Backend, database: UnitOfWorkFactory
) -> None:
    now = [1_767_366_000.0]
    limiters: list[RateLimiter] = [
        MemoryRateLimiter(lambda: now[0]),
        sql_limiter(database, now),
    ]
    for limiter in limiters:
        assert [await limiter.try_acquire("llm:g", 1 / 60, 2) for _ in range(3)] == [
            True,
            True,
            False,
        ]
        await limiter.give_back("llm:g", 1 / 60)
        assert [await limiter.try_acquire("llm:g", 1 / 60, 2) for _ in range(2)] == [
            True,
            False,
        ]
        await limiter.give_back("llm:unknown", 1 / 60)  # never taken: nothing happens
        now[0] += 1000


async def test_try_acquire_loses_no_slot_to_inexact_intervals(
    backend: Backend, database: UnitOfWorkFactory
) -> None:
    """300 a minute: 0.2 s is not exact in binary; 300 taken at once, then one per 0.2 s."""
    now = [1_767_366_000.0]
    limiter = sql_limiter(database, now)
    taken = [await limiter.try_acquire("llm:w", 5.0, 300) for _ in range(301)]
    assert taken.count(True) == 300 and taken[-1] is False
    for _ in range(5):
        now[0] += 0.2
        assert await limiter.try_acquire("llm:w", 5.0, 300)
        assert not await limiter.try_acquire("llm:w", 5.0, 300)


async def test_try_acquire_never_waits_and_acquire_still_queues(
    backend: Backend, database: UnitOfWorkFactory
) -> None:
    now = [500.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(round(seconds, 6))

    limiter = SqlRateLimiter(database.engine, clock=lambda: now[0], sleep=sleep)
    assert await limiter.try_acquire("k", 1.0, 2) and await limiter.try_acquire("k", 1.0, 2)
    assert not await limiter.try_acquire("k", 1.0, 2)
    await limiter.acquire("k", 1.0, 2)  # the same key, the waiting way: queues behind
    assert waits == [1.0]
    assert not await limiter.try_acquire("k", 1.0, 2)


async def test_racing_processes_take_exactly_the_burst(
    backend: Backend, database: UnitOfWorkFactory
) -> None:
    other = create_uow_factory(backend.url, connect_args=backend.connect_args)
    try:
        now = [1_000.0]
        limiters = [sql_limiter(database, now), sql_limiter(other, now)]
        taken = await asyncio.gather(
            *(limiters[i % 2].try_acquire("race", 1 / 60, 4) for i in range(12))
        )
        assert sum(taken) == 4
    finally:
        await other.close()


# ---- two processes, one database -------------------------------------------------------------


@asynccontextmanager
async def two_processes(
    backend: Backend, database: UnitOfWorkFactory, **config: object
) -> AsyncIterator[tuple[InterviewService, InterviewService, RecordingPlatform, ManualClock]]:
    """Engines A and B with their own pools and limiters on one database and one clock."""
    other = create_uow_factory(backend.url, connect_args=backend.connect_args)
    clock = ManualClock()
    platform = RecordingPlatform()
    services = [
        InterviewService(
            factory,
            OfflineChatModel(),
            clock,
            {"test": platform},
            EngineConfig(**config),  # type: ignore[arg-type]
            owner=owner,
            limiter=SqlRateLimiter(factory.engine, clock=lambda: clock.now().timestamp()),
        )
        for factory, owner in ((database, "A"), (other, "B"))
    ]
    try:
        yield services[0], services[1], platform, clock
    finally:
        for service in services:
            await service.close()
        await other.close()


async def start_on(service: InterviewService, candidate: str) -> tuple[Interview, Workspace]:
    workspace = await service.queries.workspace("test", "T1")
    interview = await service.lifecycle.start(
        workspace, INTERVIEWER, candidate, token_budget=200_000
    )
    return interview, workspace


async def test_two_processes_share_the_candidates_limit(
    backend: Backend, database: UnitOfWorkFactory
) -> None:
    async with two_processes(backend, database, candidate_messages_per_minute=3) as (
        a,
        b,
        platform,
        clock,
    ):
        interview, _ = await start_on(a, CANDIDATE)
        assert interview.room_key
        for i in range(5):  # alternately to each process
            await (a if i % 2 == 0 else b).turns.handle_message(
                "test", interview.room_key, CANDIDATE, f"m{i}", f"question {i}"
            )
        store = StoreView(database)
        turns = await store.list_turns(interview.id)
        assert [t.status for t in turns] == [TurnStatus.ANSWERED] * 3 + [TurnStatus.REFUSED] * 2
        assert [t.error for t in turns[3:]] == [texts.too_fast_error(3)] * 2
        assert platform.notices.count((interview.id, texts.too_fast(3))) == 1  # once, for both
        stored = await store.get_interview(interview.id)
        assert stored is not None
        assert stored.tokens_used == sum(t.charged_tokens for t in turns[:3])
        clock.advance(20)  # one slot every 20 s, for both
        await b.turns.handle_message("test", interview.room_key, CANDIDATE, "m5", "later")
        await a.turns.handle_message("test", interview.room_key, CANDIDATE, "m6", "again")
        statuses = [t.status for t in await store.list_turns(interview.id)]
        assert statuses[5:] == [TurnStatus.ANSWERED, TurnStatus.REFUSED]


async def test_two_processes_share_the_workspace_limit(
    backend: Backend, database: UnitOfWorkFactory
) -> None:
    async with two_processes(
        backend, database, candidate_messages_per_minute=0, workspace_llm_calls_per_minute=2
    ) as (a, b, platform, _):
        first, _ = await start_on(a, CANDIDATE)
        second, _ = await start_on(b, OTHER)
        assert first.room_key and second.room_key
        await a.turns.handle_message("test", first.room_key, CANDIDATE, "a1", "question")
        await b.turns.handle_message("test", second.room_key, OTHER, "b1", "question")
        await b.turns.handle_message("test", first.room_key, CANDIDATE, "a2", "question")
        store = StoreView(database)
        assert [t.status for t in await store.list_turns(first.id)] == [
            TurnStatus.ANSWERED,
            TurnStatus.REFUSED,
        ]
        assert (first.id, texts.workspace_busy(2)) in platform.notices
        assert len(platform.replies) == 2


# ---- the bot: the engine gets the bot's SQL limiter ------------------------------------------


async def test_the_bot_refuses_the_third_message_at_two_a_minute(tmp_path: Path) -> None:
    async with slack_world(tmp_path, candidate_messages_per_minute=2) as world:
        assert isinstance(world.service.ctx.limiter, SqlRateLimiter)
        assert world.service.ctx.limiter is world.adapter.outbox.limiter  # one, shared
        channel, root_ts, interview_id = await open_slack_interview(world)
        for i in range(3):
            await world.say(channel, root_ts, f"Question {i}?", f"1700000800.00010{i}")
            await world.settle()
        await world.wait_for(
            lambda: any(
                "faster than 2 a minute" in m.text for m in world.slack.thread(channel, root_ts)
            )
        )
        turns = await world.turns(interview_id)
        assert [t.status for t in turns] == [TurnStatus.ANSWERED] * 2 + [TurnStatus.REFUSED]
        assert len(world.openai.requests) == 2
        stored = await world.interview(interview_id)
        assert stored.tokens_used == sum(t.charged_tokens for t in turns[:2])
