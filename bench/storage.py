"""Storage: turn writes, interview loads and SQL statements per candidate turn, on SQLite and
PostgreSQL.

    .venv/bin/python -m bench.storage [--interviews 50] [--repeat 4] [--histories 10,200]
                                      [--only sqlite|postgres] [--postgres URL]

What it measures, on each backend, for interviews with 10 and with 200 earlier answered turns
(realistic sizes: a ~300-character question and a ~1,200-character reply each):

- **SQL statements per candidate turn**, through the real service path: one candidate message
  handed to ``InterviewService.turns.handle_message`` (store, rate limits, lease, load, reserve,
  stream, settle, release, counter refresh), counted with an SQLAlchemy ``before_cursor_execute``
  hook on the engine (as ``tests/test_engine_sql.py`` does), with the transactions (``begin``
  events) too. Also the wall time of that whole turn, its CPU time (``time.process_time``),
  and the time from the message to the model's call (the bot's own part of item 2's *event
  -> model request*). The last earlier turn of each interview is a message through the
  service too, unmeasured: a running bot has seen its conversations before.
- **Turn write**: the three units of work the engine commits to store a turn, timed each and
  summed — *pending* (``add_turn``: lock the interview row, ``INSERT ... SELECT`` the next seq),
  *streaming* (``reserve`` + ``update_turn``: the budget check and the state change in one
  transaction) and *answered* (``update_turn`` from ``streaming`` + ``settle``).
- **Interview load**: the unit of work the turn path opens before each call to the model
  (``interviews.get`` + the challenge + ``list_turns``), i.e. an interview with all its turns.

How: in one process, the real storage layer (``storage.create_uow_factory``, its units of work
and repositories, migrated by Alembic, ``SqlRateLimiter`` for the rate limits as in the bot) and
the real engine (``InterviewService``) with the console platform writing to ``/dev/null`` and
the offline model (no delay). There is no network and no platform or model latency here on
purpose: the figures are the database's (plus the engine's own CPU in the whole-turn time),
which a run of the bot process through the fakes would bury under 80 ms API calls and a 300 ms
first token. SQLite is a file in a temporary folder; PostgreSQL is a fresh database on
``--postgres`` (default: the local server), dropped afterwards. Samples are taken one after
another (no concurrency): this is latency, not throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from sqlalchemy import event

from adapters.console.platform import ConsolePlatform
from adapters.llm.offline import OfflineChatModel
from bench.fakes.processes import fresh_pg_database
from bench.harness import POSTGRES_SERVER, Distribution, header
from core.challenges import find_challenge
from core.clock import SystemClock
from core.models import Actor, Interview, Turn, TurnStatus
from core.ports import ChatRequest, ChatResult, OnDelta
from core.service import EngineConfig, InterviewService
from storage import SqlRateLimiter, UnitOfWorkFactory, create_uow_factory, upgrade

QUESTION = (
    "I think a hash map from value to index gives O(n): for each number I look up target "
    "minus it before inserting. Does that handle duplicates like [3, 3] with target 6, and "
    "what would you test first? "
)[:300]
REPLY = (
    "Yes: because you look up the complement before inserting the current value, the first 3 "
    "is stored when you reach the second one, so [3, 3] with target 6 returns [0, 1]. "
) * 8
INTERVIEWER = Actor("interviewer", is_interviewer=True)
BUDGET = 50_000_000  # never the limit here
UNITS = ("pending", "streaming", "answered")


class Discard(io.StringIO):
    """Where the console platform prints: nowhere."""

    def write(self, text: str) -> int:
        return len(text)


class StampedModel(OfflineChatModel):
    """The offline model, noting when each call reached it (``time.perf_counter``)."""

    called = 0.0

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        self.called = time.perf_counter()
        return await super().stream_chat(request, on_delta)


@dataclass
class Figures:
    """What one backend measured, per history length."""

    statements: dict[int, list[int]] = field(default_factory=dict)
    transactions: dict[int, list[int]] = field(default_factory=dict)
    kinds: dict[int, Counter[str]] = field(default_factory=dict)
    turn_s: dict[int, list[float]] = field(default_factory=dict)
    to_model_s: dict[int, list[float]] = field(default_factory=dict)
    turn_cpu_s: dict[int, list[float]] = field(default_factory=dict)
    load_s: dict[int, list[float]] = field(default_factory=dict)
    write_s: dict[int, dict[str, list[float]]] = field(default_factory=dict)


class StatementCounter:
    """Counts statements (by first keyword) and transactions on an engine while active."""

    def __init__(self, database: UnitOfWorkFactory) -> None:
        self.engine = database.engine.sync_engine
        self.statements = 0
        self.transactions = 0
        self.kinds: Counter[str] = Counter()

    def _statement(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        self.statements += 1
        self.kinds[statement.split(None, 1)[0].upper()] += 1

    def _begin(self, _conn: object) -> None:
        self.transactions += 1

    def __enter__(self) -> StatementCounter:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "begin", self._begin)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "begin", self._begin)


@asynccontextmanager
async def database(backend: str, args: argparse.Namespace) -> AsyncIterator[UnitOfWorkFactory]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
            await upgrade(url)
            factory = create_uow_factory(url)
            try:
                yield factory
            finally:
                await factory.close()
        return
    async with fresh_pg_database(args.postgres, "bench_storage") as url:
        factory = create_uow_factory(url)
        try:
            yield factory
        finally:
            await factory.close()


async def timed(work: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


async def seed(db: UnitOfWorkFactory, interview: Interview, turns: int) -> None:
    """``turns`` answered exchanges, stored as the engine stores them (one unit of work)."""
    async with db() as uow:
        for i in range(turns):
            await uow.interviews.add_turn(
                Turn(
                    interview_id=interview.id,
                    author_id=interview.candidate_id,
                    content=QUESTION,
                    platform_message_id=f"h{i}",
                    created_at=interview.created_at,
                    status=TurnStatus.ANSWERED,
                    reply=REPLY,
                    prompt_tokens=500 + 400 * i,
                    completion_tokens=300,
                    charged_tokens=800 + 400 * i,
                    usage_reported=True,
                    answered_at=interview.created_at,
                )
            )
        await uow.commit()


async def load(db: UnitOfWorkFactory, interview: Interview) -> None:
    """What the turn path reads before each model call (``core/turns.py`` ``_answer``)."""
    async with db() as uow:
        found = await uow.interviews.get(interview.id)
        assert found is not None
        await find_challenge(uow.challenges, found.workspace_id, found.challenge_slug)
        earlier = await uow.interviews.list_turns(found.id)
    assert len(earlier) > 0


async def write_turn(db: UnitOfWorkFactory, interview: Interview, key: str) -> dict[str, float]:
    """The three units of work that store a turn, as ``core/turns.py`` commits them."""
    now = SystemClock().now()
    turn = Turn(
        interview_id=interview.id,
        author_id=interview.candidate_id,
        content=QUESTION,
        platform_message_id=key,
        created_at=now,
    )

    async def pending() -> None:
        async with db() as uow:
            assert await uow.interviews.add_turn(turn)
            await uow.commit()

    async def streaming() -> None:
        turn.status, turn.prompt_tokens, turn.reserved_tokens = TurnStatus.STREAMING, 900, 4000
        async with db() as uow:
            assert await uow.interviews.reserve(interview.id, turn.reserved_tokens)
            assert await uow.interviews.update_turn(turn, was=TurnStatus.PENDING)
            await uow.commit()

    async def answered() -> None:
        turn.status, turn.reply, turn.completion_tokens = TurnStatus.ANSWERED, REPLY, 300
        turn.charged_tokens, turn.usage_reported, turn.answered_at = 1200, True, now
        async with db() as uow:
            assert await uow.interviews.update_turn(turn, was=TurnStatus.STREAMING)
            await uow.interviews.settle(
                interview.id,
                reserved=turn.reserved_tokens,
                charged=turn.charged_tokens,
                next_prompt_tokens=1600,
                turn_growth_tokens=400,
            )
            await uow.commit()

    return {
        "pending": await timed(pending),
        "streaming": await timed(streaming),
        "answered": await timed(answered),
    }


async def measure(backend: str, args: argparse.Namespace) -> Figures:
    figures = Figures()
    async with database(backend, args) as db:
        model = StampedModel()
        service = InterviewService(
            db,
            model,
            SystemClock(),
            {"console": ConsolePlatform(out=Discard())},
            EngineConfig(token_budget=BUDGET, evaluation=False, weekly_summary=None),
            limiter=SqlRateLimiter(db.engine),
        )
        try:
            workspace = await service.queries.workspace("console", "bench")
            for history in args.histories:
                interviews = []
                for n in range(args.interviews):
                    interview = await service.lifecycle.start(
                        workspace, INTERVIEWER, f"cand-{history}-{n}", token_budget=BUDGET
                    )
                    await seed(db, interview, history - 1)
                    interviews.append(interview)
                await turns_through_the_service(service, model, db, interviews, history, figures)
                figures.load_s[history] = [
                    await timed(partial(load, db, interview))
                    for _ in range(args.repeat)
                    for interview in interviews
                ]
                writes: dict[str, list[float]] = {u: [] for u in UNITS}
                for r in range(args.repeat):
                    for interview in interviews:
                        for unit, seconds in (await write_turn(db, interview, f"w{r}")).items():
                            writes[unit].append(seconds)
                writes["sum"] = [sum(t) for t in zip(*writes.values(), strict=True)]
                figures.write_s[history] = writes
        finally:
            await service.close()
    return figures


async def turns_through_the_service(
    service: InterviewService,
    model: StampedModel,
    db: UnitOfWorkFactory,
    interviews: list[Interview],
    history: int,
    figures: Figures,
) -> None:
    """One candidate message per interview, at exactly ``history`` earlier turns: the last of
    those is a first message through the service, unmeasured, as a running bot has seen
    its conversations before (the room and the counts of earlier texts are known, each pooled
    connection has prepared its statements)."""
    for interview in interviews:
        assert interview.room_key
        await service.turns.handle_message(
            "console", interview.room_key, interview.candidate_id, "m-warm", QUESTION
        )
    statements, transactions, seconds, to_model, cpu = [], [], [], [], []
    kinds: Counter[str] = Counter()
    for interview in interviews:
        assert interview.room_key
        with StatementCounter(db) as counted:
            start, start_cpu = time.perf_counter(), time.process_time()
            turn = await service.turns.handle_message(
                "console", interview.room_key, interview.candidate_id, "m-bench", QUESTION
            )
            seconds.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            to_model.append(model.called - start)
        assert turn is not None
        statements.append(counted.statements)
        transactions.append(counted.transactions)
        kinds.update(counted.kinds)
    async with db() as uow:  # every one of them answered (not refused, not failed)
        for interview in interviews:
            done = await uow.interviews.list_turns(interview.id)
            assert len(done) == history + 1 and done[-1].status is TurnStatus.ANSWERED, done[-1]
    figures.statements[history] = statements
    figures.transactions[history] = transactions
    figures.kinds[history] = kinds
    figures.turn_s[history] = seconds
    figures.to_model_s[history] = to_model
    figures.turn_cpu_s[history] = cpu


def report(backend: str, figures: Figures) -> None:
    for history, counts in figures.statements.items():
        n = len(counts)
        kinds = ", ".join(f"{k} {v / n:g}" for k, v in sorted(figures.kinds[history].items()))
        print(
            f"{backend} statements per candidate turn at {history} earlier turns: "
            f"{Distribution.of(counts).plain(digits=0)}; transactions "
            f"{Distribution.of(figures.transactions[history]).plain(digits=0)}; per turn: {kinds}"
        )
    for history, seconds in figures.turn_s.items():
        print(
            f"{backend} whole candidate turn (service path, offline model, no platform "
            f"latency) at {history}: {Distribution.of(seconds).ms()}"
        )
    for history, seconds in figures.to_model_s.items():
        print(
            f"{backend} candidate message -> model call (service path) at {history}: "
            f"{Distribution.of(seconds).ms()}"
        )
    for history, seconds in figures.turn_cpu_s.items():
        print(
            f"{backend} CPU of the whole candidate turn at {history}: "
            f"{Distribution.of(seconds).ms()}"
        )
    for history, seconds in figures.load_s.items():
        print(f"{backend} interview load at {history} turns: {Distribution.of(seconds).ms()}")
    for history, units in figures.write_s.items():
        for unit, seconds in units.items():
            figure = Distribution.of(seconds).ms()
            print(f"{backend} turn write ({unit}) at {history}+ turns: {figure}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interviews", type=int, default=50, help="interviews per history")
    parser.add_argument("--repeat", type=int, default=4, help="loads and writes per interview")
    parser.add_argument(
        "--histories",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[10, 200],
        help="earlier turns per interview, comma-separated",
    )
    parser.add_argument("--only", choices=("sqlite", "postgres"))
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES", POSTGRES_SERVER),
        help="PostgreSQL server URL (a fresh database is created on it and dropped)",
    )
    args = parser.parse_args(argv)
    backends = [args.only] if args.only else ["sqlite", "postgres"]
    header(
        "storage: turn writes, interview loads, SQL statements per candidate turn",
        backends="+".join(backends),
        interviews=args.interviews,
        repeat=args.repeat,
        histories="/".join(map(str, args.histories)),
        postgres=args.postgres if "postgres" in backends else "-",
    )
    for backend in backends:
        report(backend, asyncio.run(measure(backend, args)))


if __name__ == "__main__":
    main()
