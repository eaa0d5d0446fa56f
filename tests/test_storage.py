"""The units of work, repositories, jobs, leases, rate limits and migrations, against SQLite
and (when ``TEST_DATABASE_URL`` is set) PostgreSQL; each PostgreSQL test works in a schema of
its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError

from core.errors import Conflict, NotFound, Stale
from core.models import (
    AuditEvent,
    Challenge,
    EndReason,
    Interview,
    Job,
    Status,
    Turn,
    TurnStatus,
    Workspace,
)
from storage import (
    SqlRateLimiter,
    UnitOfWorkFactory,
    create_uow_factory,
    make_engine,
    normalize_url,
    upgrade,
)
from storage.migrate import current_revision, head_revision
from storage.tables import metadata
from tests.conftest import Backend

T0 = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def workspace(database: UnitOfWorkFactory) -> Workspace:
    async with database() as uow:
        found = await uow.workspaces.get_or_create("slack", "T0001")
        await uow.commit()
    return found


def make_interview(workspace: Workspace, candidate: str = "U-cand", **changes: Any) -> Interview:
    fields: dict[str, Any] = {
        "workspace_id": workspace.id,
        "platform": workspace.platform,
        "candidate_id": candidate,
        "interviewer_id": "U-boss",
        "challenge_slug": "two-sum",
        "time_limit_s": 1800,
        "token_budget": 20_000,
        "created_at": T0,
        "status": Status.ACTIVE,
        "started_at": T0,
    }
    fields.update(changes)
    return Interview(**fields)


def make_turn(interview: Interview, message_id: str, **changes: Any) -> Turn:
    fields: dict[str, Any] = {
        "interview_id": interview.id,
        "author_id": interview.candidate_id,
        "content": f"question {message_id}",
        "platform_message_id": message_id,
        "created_at": T0 + timedelta(seconds=5),
    }
    fields.update(changes)
    return Turn(**fields)


def event(interview: Interview, kind: str, at: datetime = T0) -> AuditEvent:
    return AuditEvent(interview_id=interview.id, actor_id="U-boss", kind=kind, at=at)


async def add(database: UnitOfWorkFactory, *interviews: Interview) -> None:
    async with database() as uow:
        for interview in interviews:
            await uow.interviews.add(interview)
        await uow.commit()


async def get(database: UnitOfWorkFactory, interview_id: str) -> Interview | None:
    async with database() as uow:
        return await uow.interviews.get(interview_id)


# -- migrations and health ------------------------------------------------------------------


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrations_are_idempotent_and_match_tables(backend: Backend) -> None:
    await upgrade(backend.url, connect_args=backend.connect_args)
    await upgrade(backend.url, connect_args=backend.connect_args)
    engine = make_engine(backend.url, connect_args=backend.connect_args)
    try:
        assert await current_revision(engine) == head_revision() == "0005"
        async with engine.connect() as conn:
            assert await conn.run_sync(_schema_diff) == []
    finally:
        await engine.dispose()


def test_normalize_url_adds_async_drivers() -> None:
    assert normalize_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert normalize_url("postgres://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"


async def test_ping(database: UnitOfWorkFactory, tmp_path: Any) -> None:
    assert await database.ping() is True
    broken = create_uow_factory(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    try:
        assert await broken.ping() is False
    finally:
        await broken.close()


# -- the unit of work -----------------------------------------------------------------------


async def test_nothing_is_written_without_commit(
    database: UnitOfWorkFactory, workspace: Workspace
) -> None:
    interview = make_interview(workspace)
    async with database() as uow:
        await uow.interviews.add(interview)
    assert await get(database, interview.id) is None
    with pytest.raises(RuntimeError, match="boom"):
        async with database() as uow:
            await uow.interviews.add(interview)
            raise RuntimeError("boom")
    assert await get(database, interview.id) is None


async def test_many_units_of_work_at_once(
    database: UnitOfWorkFactory, workspace: Workspace
) -> None:
    """Concurrent use cases (SQLite's take turns; PostgreSQL's run side by side)."""

    async def one(i: int) -> None:
        async with database() as uow:
            await uow.interviews.add(make_interview(workspace, candidate=f"C{i}"))
            await uow.commit()

    await asyncio.gather(*(one(i) for i in range(12)))
    async with database() as uow:
        assert len(await uow.interviews.list_open(workspace.id)) == 12


# -- workspaces -----------------------------------------------------------------------------


async def test_workspace_get_or_create_is_idempotent_even_when_racing(
    database: UnitOfWorkFactory,
) -> None:
    async def get_or_create(external_id: str) -> Workspace:
        async with database() as uow:
            found = await uow.workspaces.get_or_create("slack", external_id)
            await uow.commit()
        return found

    first, again = await get_or_create("T1"), await get_or_create("T1")
    assert again == first
    racing = await asyncio.gather(*(get_or_create("T2") for _ in range(8)))
    assert len({w.id for w in racing}) == 1


async def test_workspace_settings_round_trip(database: UnitOfWorkFactory) -> None:
    async with database() as uow:
        workspace = await uow.workspaces.get_or_create("slack", "T1")
        workspace.settings = {"interviewer_channel": "C1", "nested": {"a": [1, 2]}}
        await uow.workspaces.update(workspace)
        await uow.commit()
    async with database() as uow:
        assert await uow.workspaces.get(workspace.id) == workspace
        assert await uow.workspaces.get("no-such-id") is None


# -- interviews -----------------------------------------------------------------------------


async def test_interview_round_trip(database: UnitOfWorkFactory, workspace: Workspace) -> None:
    plus_two = timezone(timedelta(hours=2))
    interview = make_interview(
        workspace,
        status=Status.ENDED,
        created_at=datetime(2026, 1, 2, 17, 0, 0, 123456, tzinfo=plus_two),
        scheduled_for=T0 - timedelta(minutes=5),
        ended_at=T0 + timedelta(minutes=31, microseconds=7),
        end_reason=EndReason.TOKENS_EXHAUSTED,
        extra_time_s=300,
        extra_tokens=5000,
        paused_total_s=12.5,
        paused_since=T0 + timedelta(minutes=10),
        tokens_used=24_999,
        tokens_reserved=17,
        warnings_sent=["time_25", "tokens_75"],
        room_key="C42:1700000000.1234",
        platform_data={"channel": "C42", "ids": [1, 2]},
        next_prompt_tokens=321,
        turn_growth_tokens=45,
    )
    await add(database, interview)
    loaded = await get(database, interview.id)
    assert loaded == interview
    assert loaded is not None and loaded.created_at.tzinfo is UTC
    assert loaded.created_at == datetime(2026, 1, 2, 15, 0, 0, 123456, tzinfo=UTC)
    assert type(loaded.status) is Status and type(loaded.end_reason) is EndReason
    assert await get(database, "no-such-id") is None


async def test_naive_datetimes_are_refused(
    database: UnitOfWorkFactory, workspace: Workspace
) -> None:
    interview = make_interview(workspace, created_at=datetime(2026, 1, 2, 15, 0))
    with pytest.raises(StatementError, match="naive datetime"):
        await add(database, interview)
    assert await get(database, interview.id) is None


async def test_update_is_optimistic_and_never_touches_the_budget(
    database: UnitOfWorkFactory, workspace: Workspace
) -> None:
    interview = make_interview(workspace)
    await add(database, interview)
    async with database() as uow:
        stale = await uow.interviews.get(interview.id)
        assert await uow.interviews.reserve(interview.id, 500)
        await uow.interviews.settle(interview.id, reserved=500, charged=321)
        await uow.commit()
    assert stale is not None
    stale.extra_time_s, stale.tokens_used = 60, 999_999  # a stale copy of the budget
    async with database() as uow:
        await uow.interviews.update(stale, event(stale, "extended"))
        await uow.commit()
    assert stale.version == 1
    stored = await get(database, interview.id)
    assert stored is not None and (stored.extra_time_s, stored.tokens_used) == (60, 321)

    stale.version = 0  # someone saved since
    async with database() as uow:
        with pytest.raises(Stale):
            await uow.interviews.update(stale, event(stale, "lost"))
    async with database() as uow:
        assert [e.kind for e in await uow.interviews.list_audit(interview.id)] == ["extended"]


async def test_only_one_open_interview_per_candidate(
    database: UnitOfWorkFactory, workspace: Workspace
) -> None:
    await add(database, make_interview(workspace))
    with pytest.raises(Conflict, match="already has an active interview"):
        await add(database, make_interview(workspace))
    scheduled = make_interview(workspace, status=Status.SCHEDULED, started_at=None)
    await add(database, scheduled)  # not open yet: may wait beside the active one
    scheduled.transition(Status.ACTIVE)
    async with database() as uow:
        with pytest.raises(Conflict, match="already has an active interview"):
            await uow.interviews.update(scheduled)


async def test_room_key_is_unique_per_platform(
    database: UnitOfWorkFactory, workspace: Workspace
) -> None:
    await add(database, make_interview(workspace, candidate="A", room_key="C1"))
    with pytest.raises(Conflict, match="already linked"):
        await add(database, make_interview(workspace, candidate="B", room_key="C1"))
    await add(
        database, make_interview(workspace, candidate="C"), make_interview(workspace, candidate="D")
    )


async def test_lookups(database: UnitOfWorkFactory, workspace: Workspace) -> None:
    async with database() as uow:
        other_ws = await uow.workspaces.get_or_create("discord", "G1")
        await uow.commit()
    active = make_interview(workspace, candidate="A", room_key="C-A")
    paused = make_interview(
        workspace, candidate="B", status=Status.PAUSED, room_key="C-B", created_at=T0 + timedelta(1)
    )
    ended = make_interview(workspace, candidate="C", status=Status.ENDED, room_key="C-C")
    foreign = make_interview(other_ws, candidate="A", room_key="C-A")
    await add(database, active, paused, ended, foreign)
    async with database() as uow:
        repo = uow.interviews
        assert (await repo.find_by_room("slack", "C-A")).id == active.id  # type: ignore[union-attr]
        assert (await repo.find_by_room("discord", "C-A")).id == foreign.id  # type: ignore[union-attr]
        assert await repo.find_by_room("slack", "nope") is None
        assert [i.id for i in await repo.list_open(workspace.id)] == [active.id, paused.id]
        assert {i.id for i in await repo.list_open()} == {active.id, paused.id, foreign.id}
        assert (await repo.find_open_for_candidate(workspace.id, "B")).id == paused.id  # type: ignore[union-attr]
        assert await repo.find_open_for_candidate(workspace.id, "C") is None


# -- the budget: reserve (authorize) and settle (capture) -----------------------------------


async def test_reserve_checks_the_budget_in_the_same_statement(
    database: UnitOfWorkFactory, workspace: Workspace
) -> None:
    interview = make_interview(workspace, token_budget=1000, extra_tokens=200, tokens_used=300)
    await add(database, interview)
    async with database() as uow:
        assert await uow.interviews.reserve(interview.id, 900)  # 300 + 900 <= 1200
        assert not await uow.interviews.reserve(interview.id, 1)  # nothing left
        await uow.commit()
    async with database() as uow:
        await uow.interviews.settle(interview.id, reserved=900, charged=850, next_prompt_tokens=7)
        await uow.commit()
    stored = await get(database, interview.id)
    assert stored is not None
    assert (stored.tokens_used, stored.tokens_reserved, stored.next_prompt_tokens) == (1150, 0, 7)
    assert stored.tokens_left == 50


async def test_concurrent_reservations_never_pass_the_budget(
    database: UnitOfWorkFactory, workspace: Workspace
) -> None:
    interview = make_interview(workspace, token_budget=10_000)
    await add(database, interview)

    async def reserve() -> bool:
        async with database() as uow:
            held = await uow.interviews.reserve(interview.id, 700)
            await uow.commit()
        return held

    results = await asyncio.gather(*(reserve() for _ in range(30)))
    assert sum(results) == 14  # 14 * 700 = 9,800; a 15th would pass 10,000
    stored = await get(database, interview.id)
    assert stored is not None and stored.tokens_reserved == 9800


async def test_a_paused_interview_reserves_nothing(
    database: UnitOfWorkFactory, workspace: Workspace
) -> None:
    interview = make_interview(workspace, status=Status.PAUSED)
    await add(database, interview)
    async with database() as uow:
        assert not await uow.interviews.reserve(interview.id, 1)


# -- turns ----------------------------------------------------------------------------------


async def test_add_turn_assigns_seq_and_ignores_duplicates(
    database: UnitOfWorkFactory, workspace: Workspace
) -> None:
    interview, other = make_interview(workspace), make_interview(workspace, candidate="U-other")
    await add(database, interview, other)
    async with database() as uow:
        repo = uow.interviews
        first, second = make_turn(interview, "m1"), make_turn(interview, "m2")
        assert await repo.add_turn(first) and await repo.add_turn(second)
        assert (first.seq, second.seq) == (1, 2)
        duplicate = make_turn(interview, "m1", content="again")
        assert await repo.add_turn(duplicate) is False and duplicate.seq == 0
        elsewhere = make_turn(other, "m1")
        assert await repo.add_turn(elsewhere) and elsewhere.seq == 1
        await uow.commit()
    async with database() as uow:
        assert await uow.interviews.list_turns(interview.id) == [first, second]
        with pytest.raises(NotFound):
            await uow.interviews.add_turn(make_turn(make_interview(workspace, candidate="X"), "m"))


async def test_the_row_locked_to_add_a_turn_is_not_read_again_until_written(
    database: UnitOfWorkFactory, workspace: Workspace
) -> None:
    """add_turn locks the interview's row and keeps it: the claim's next read of the
    interview costs no statement; a write in the same transaction makes the next read fresh."""
    interview = make_interview(workspace, token_budget=1000)
    await add(database, interview)
    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    sqlalchemy.event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with database() as uow:
            assert await uow.interviews.add_turn(make_turn(interview, "m1"))
            sent.clear()
            locked = await uow.interviews.get(interview.id)
            assert sent == [] and locked == interview
            assert await uow.interviews.reserve(interview.id, 300)
            reserved = await uow.interviews.get(interview.id)
            assert reserved is not None and reserved.tokens_reserved == 300
            reserved.status = Status.PAUSED
            await uow.interviews.update(reserved)
            paused = await uow.interviews.get(interview.id)
            assert paused is not None and paused.status is Status.PAUSED
            await uow.interviews.settle(interview.id, reserved=300, charged=250)
            settled = await uow.interviews.get(interview.id)
            assert settled is not None and settled.tokens_used == 250
            assert sum("SELECT" in s and "FROM interviews" in s for s in sent) == 3
            await uow.commit()
    finally:
        sqlalchemy.event.remove(database.engine.sync_engine, "before_cursor_execute", record)


async def test_concurrent_add_turn_is_gapless(
    database: UnitOfWorkFactory, workspace: Workspace
) -> None:
    interview = make_interview(workspace)
    await add(database, interview)

    async def one(i: int) -> bool:
        async with database() as uow:
            added = await uow.interviews.add_turn(make_turn(interview, f"m{i % 15}"))
            await uow.commit()
        return added

    results = await asyncio.gather(*(one(i) for i in range(30)))
    assert sum(results) == 15  # each message id once
    async with database() as uow:
        turns = await uow.interviews.list_turns(interview.id)
    assert [t.seq for t in turns] == list(range(1, 16))


async def test_update_turn_only_from_the_expected_status(
    database: UnitOfWorkFactory, workspace: Workspace
) -> None:
    interview = make_interview(workspace)
    await add(database, interview)
    turn = make_turn(interview, "m1")
    async with database() as uow:
        await uow.interviews.add_turn(turn)
        assert await uow.interviews.next_open_turn(interview.id) == turn
        assert await uow.interviews.with_open_turns() == [interview.id]
        turn.status, turn.reserved_tokens = TurnStatus.STREAMING, 900
        assert await uow.interviews.update_turn(turn, was=TurnStatus.PENDING)
        turn.status, turn.reply, turn.charged_tokens = TurnStatus.ANSWERED, "hi", 55
        assert await uow.interviews.update_turn(turn, was=TurnStatus.STREAMING)
        # a second settle of the same turn (a process that lost its lease) changes nothing
        late = make_turn(interview, "m1", id=turn.id, seq=1, status=TurnStatus.FAILED)
        assert not await uow.interviews.update_turn(late, was=TurnStatus.STREAMING)
        await uow.commit()
    async with database() as uow:
        (stored,) = await uow.interviews.list_turns(interview.id)
        assert (stored.status, stored.reply, stored.charged_tokens) == (
            TurnStatus.ANSWERED,
            "hi",
            55,
        )
        assert await uow.interviews.next_open_turn(interview.id) is None
        assert await uow.interviews.with_open_turns() == []


async def test_audit_events_by_time_then_insertion(
    database: UnitOfWorkFactory, workspace: Workspace
) -> None:
    interview = make_interview(workspace)
    await add(database, interview)
    async with database() as uow:
        await uow.interviews.add_events(
            event(interview, "b", T0 + timedelta(seconds=1)), event(interview, "a", T0)
        )
        await uow.interviews.add_events(event(interview, "c", T0), event(interview, "d", T0))
        await uow.commit()
    async with database() as uow:
        assert [e.kind for e in await uow.interviews.list_audit(interview.id)] == [
            "a",
            "c",
            "d",
            "b",
        ]


# -- challenges -----------------------------------------------------------------------------


async def test_custom_challenges(database: UnitOfWorkFactory, workspace: Workspace) -> None:
    shared = Challenge("graph", "Graph", "hard", "Global.", 600, 9000, ("x",), builtin=False)
    own = Challenge("graph", "Our Graph", "medium", "Ours.", rubric=("y", "z"), builtin=False)
    async with database() as uow:
        await uow.challenges.save(None, shared)
        await uow.challenges.save(workspace.id, own)
        await uow.challenges.save(None, shared)  # replace
        await uow.commit()
    async with database() as uow:
        assert await uow.challenges.get(workspace.id, "graph") == own
        assert await uow.challenges.get(None, "graph") == shared
        assert await uow.challenges.list(workspace.id) == [own]
        assert await uow.challenges.get(None, "nope") is None


# -- durable jobs ---------------------------------------------------------------------------


def job(key: str, due: datetime, **payload: Any) -> Job:
    return Job("tick", key, due, dict(payload))


async def test_jobs_are_claimed_once_run_and_finished(database: UnitOfWorkFactory) -> None:
    async with database() as uow:
        await uow.jobs.schedule(job("a", T0, n=1))
        await uow.jobs.schedule(job("b", T0 + timedelta(minutes=5)))
        await uow.commit()
    until = T0 + timedelta(minutes=1)
    async with database() as uow:
        assert await uow.jobs.next_due() == T0
        (claimed,) = await uow.jobs.claim_due("p1", T0, until, 10)
        assert (claimed.key, claimed.payload, claimed.attempts) == ("a", {"n": 1}, 1)
        assert await uow.jobs.claim_due("p2", T0, until, 10) == []  # held by p1
        # the claim makes the job claimable again only once it expires
        assert await uow.jobs.next_due() == until
        await uow.commit()
    async with database() as uow:
        await uow.jobs.finish(claimed, T0)
        await uow.commit()
    async with database() as uow:
        assert await uow.jobs.claim_due("p2", T0 + timedelta(hours=1), until, 10) != []
        stored = await uow.jobs.get("a")
        assert stored is not None and stored.done_at == T0


async def test_an_expired_claim_is_taken_over(database: UnitOfWorkFactory) -> None:
    async with database() as uow:
        await uow.jobs.schedule(job("a", T0))
        await uow.commit()
    async with database() as uow:
        (_first,) = await uow.jobs.claim_due("dead", T0, T0 + timedelta(seconds=60), 10)
        await uow.commit()
    later = T0 + timedelta(seconds=61)
    async with database() as uow:
        (second,) = await uow.jobs.claim_due("alive", later, later + timedelta(seconds=60), 10)
        await uow.commit()
    assert (second.claimed_by, second.attempts) == ("alive", 2)


async def test_a_job_scheduled_again_while_it_runs_stays_armed(
    database: UnitOfWorkFactory,
) -> None:
    async with database() as uow:
        await uow.jobs.schedule(job("tick:1", T0))
        await uow.commit()
    async with database() as uow:
        (running,) = await uow.jobs.claim_due("p1", T0, T0 + timedelta(seconds=60), 10)
        await uow.jobs.schedule(job("tick:1", T0 + timedelta(minutes=1)))  # the handler re-arms
        await uow.jobs.finish(running, T0)
        await uow.commit()
    async with database() as uow:
        stored = await uow.jobs.get("tick:1")
        assert stored is not None and stored.done_at is None
        assert stored.due_at == T0 + timedelta(minutes=1) and stored.revision == 1
        await uow.jobs.cancel("tick:1", T0)
        await uow.commit()
    async with database() as uow:
        assert await uow.jobs.next_due() is None


async def test_a_failed_job_is_retried_later(database: UnitOfWorkFactory) -> None:
    async with database() as uow:
        await uow.jobs.schedule(job("a", T0))
        await uow.commit()
    async with database() as uow:
        (claimed,) = await uow.jobs.claim_due("p1", T0, T0 + timedelta(seconds=60), 10)
        await uow.jobs.retry(claimed, T0 + timedelta(seconds=5), "boom")
        await uow.commit()
    async with database() as uow:
        assert await uow.jobs.claim_due("p1", T0 + timedelta(seconds=4), T0, 10) == []
        (again,) = await uow.jobs.claim_due("p1", T0 + timedelta(seconds=5), T0, 10)
        assert again.last_error == "boom" and again.attempts == 2


async def test_concurrent_claimers_split_the_work(database: UnitOfWorkFactory) -> None:
    async with database() as uow:
        for i in range(40):
            await uow.jobs.schedule(job(f"j{i}", T0 + timedelta(microseconds=i)))
        await uow.commit()

    async def claimer(name: str) -> list[str]:
        got: list[str] = []
        while True:
            async with database() as uow:
                batch = await uow.jobs.claim_due(name, T0 + timedelta(1), T0 + timedelta(2), 3)
                await uow.commit()
            if not batch:
                return got
            got += [j.key for j in batch]

    claimed = await asyncio.gather(*(claimer(f"p{i}") for i in range(4)))
    everything = [key for keys in claimed for key in keys]
    assert sorted(everything) == sorted(f"j{i}" for i in range(40))  # each exactly once


# -- leases ---------------------------------------------------------------------------------


async def test_leases_are_exclusive_until_they_expire(database: UnitOfWorkFactory) -> None:
    until = T0 + timedelta(seconds=30)
    async with database() as uow:
        assert await uow.leases.take("k", "p1", T0, until)
        assert await uow.leases.take("k", "p1", T0, until + timedelta(seconds=5))  # renew
        assert not await uow.leases.take("k", "p2", T0 + timedelta(seconds=10), until)
        assert await uow.leases.holder("k", T0) == ("p1", until + timedelta(seconds=5))
        await uow.commit()
    async with database() as uow:
        late = until + timedelta(seconds=6)
        assert await uow.leases.holder("k", late) is None
        assert await uow.leases.take("k", "p2", late, late + timedelta(seconds=30))
        await uow.leases.release("k", "p1")  # not p1's any more: nothing happens
        assert await uow.leases.holder("k", late) is not None
        await uow.leases.release("k", "p2")
        assert await uow.leases.holder("k", late) is None
        await uow.commit()


async def test_only_one_of_many_racing_takers_gets_a_lease(database: UnitOfWorkFactory) -> None:
    async def take(name: str) -> bool:
        async with database() as uow:
            taken = await uow.leases.take("race", name, T0, T0 + timedelta(seconds=30))
            await uow.commit()
        return taken

    assert sum(await asyncio.gather(*(take(f"p{i}") for i in range(10)))) == 1


# -- shared rate limits ---------------------------------------------------------------------


async def test_rate_limiter_spaces_calls_after_the_burst(database: UnitOfWorkFactory) -> None:
    now = [1000.0]
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(round(seconds, 6))

    limiter = SqlRateLimiter(database.engine, clock=lambda: now[0], sleep=fake_sleep)
    for _ in range(5):
        await limiter.acquire("slack:T1:chat.update", per_second=2.0, burst=3)
    # the first 3 pass at once; then a slot every 0.5 s
    assert waits == [0.5, 1.0]


async def test_two_processes_share_one_budget(
    backend: Backend, database: UnitOfWorkFactory
) -> None:
    """Two engines (as two processes would have) take slots from one key."""
    other = create_uow_factory(backend.url, connect_args=backend.connect_args)
    try:
        now = [50.0]
        slots: list[float] = []

        async def record(seconds: float) -> None:
            slots.append(seconds)

        limiters = [
            SqlRateLimiter(database.engine, clock=lambda: now[0], sleep=record),
            SqlRateLimiter(other.engine, clock=lambda: now[0], sleep=record),
        ]
        await asyncio.gather(
            *(limiters[i % 2].acquire("k", per_second=1.0, burst=1) for i in range(10))
        )
        # one slot each second across both: waits 1..9 s (one each), none doubled
        assert sorted(round(s) for s in slots) == list(range(1, 10))
    finally:
        await other.close()


async def test_sqlite_units_of_work_cannot_nest(tmp_path: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nest.db'}"
    await upgrade(url)
    factory = create_uow_factory(url)
    try:
        async with factory():
            with pytest.raises(RuntimeError, match="already open"):
                async with factory():
                    pass
        async with factory() as uow:  # and the factory still works afterwards
            await uow.commit()
    finally:
        await factory.close()
