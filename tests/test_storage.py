"""SqlStore and the migrations, against SQLite and (when configured) PostgreSQL.

Set ``TEST_DATABASE_URL`` (e.g. ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``) to
run every test on PostgreSQL too; each test then works in a schema of its own, dropped
afterwards, so concurrent runs against one database do not collide.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError

from core.errors import Conflict, NotFound
from core.models import (
    AuditEvent,
    Challenge,
    EndReason,
    Interview,
    Status,
    Turn,
    TurnStatus,
    Workspace,
)
from storage import SqlStore, create_store, make_engine, normalize_url, upgrade
from storage.migrate import current_revision, head_revision
from storage.tables import metadata
from tests.conftest import Backend

T0 = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def workspace(store: SqlStore) -> Workspace:
    return await store.get_or_create_workspace("slack", "T0001")


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


def event(interview: Interview, kind: str, at: datetime, **detail: Any) -> AuditEvent:
    return AuditEvent(interview_id=interview.id, actor_id="U-boss", kind=kind, at=at, detail=detail)


# -- migrations ---------------------------------------------------------------------------


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrations_are_idempotent_and_match_tables(backend: Backend) -> None:
    await upgrade(backend.url, connect_args=backend.connect_args)
    await upgrade(backend.url, connect_args=backend.connect_args)

    engine = make_engine(backend.url, connect_args=backend.connect_args)
    try:
        assert await current_revision(engine) == head_revision() == "0002"
        async with engine.connect() as conn:
            assert await conn.run_sync(_schema_diff) == []
            open_index = await conn.scalar(
                sa.text(
                    "SELECT sql FROM sqlite_master WHERE name = 'uq_interviews_open_candidate'"
                    if backend.name == "sqlite"
                    else "SELECT indexdef FROM pg_indexes "
                    "WHERE indexname = 'uq_interviews_open_candidate' "
                    "AND schemaname = current_schema()"
                )
            )
        assert open_index is not None
        assert "UNIQUE" in open_index.upper() and "WHERE" in open_index.upper()
    finally:
        await engine.dispose()


def test_normalize_url_adds_async_drivers() -> None:
    assert normalize_url("sqlite:///./x.db") == "sqlite+aiosqlite:///./x.db"
    assert normalize_url("postgres://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert normalize_url("postgresql://u@h:5433/db") == "postgresql+asyncpg://u@h:5433/db"
    assert normalize_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"


# -- health -------------------------------------------------------------------------------


async def test_ping(store: SqlStore, tmp_path: Any) -> None:
    assert await store.ping() is True
    broken = create_store(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    try:
        assert await broken.ping() is False
    finally:
        await broken.close()


# -- workspaces ---------------------------------------------------------------------------


async def test_workspace_get_or_create_is_idempotent(store: SqlStore) -> None:
    first = await store.get_or_create_workspace("slack", "T1")
    again = await store.get_or_create_workspace("slack", "T1")
    other = await store.get_or_create_workspace("discord", "T1")
    assert again == first
    assert other.id != first.id

    racing = await asyncio.gather(*(store.get_or_create_workspace("slack", "T2") for _ in range(8)))
    assert len({w.id for w in racing}) == 1


async def test_workspace_settings_round_trip(store: SqlStore) -> None:
    workspace = await store.get_or_create_workspace("slack", "T1")
    workspace.settings = {"report_channel": "C1", "default_minutes": 45, "nested": {"a": [1, 2]}}
    await store.save_workspace(workspace)

    loaded = await store.get_workspace(workspace.id)
    assert loaded == workspace
    assert loaded is not workspace
    assert await store.get_or_create_workspace("slack", "T1") == workspace
    assert await store.get_workspace("no-such-id") is None

    fresh = Workspace(platform="console", external_id="local", settings={"x": 1})
    await store.save_workspace(fresh)  # saving an unknown workspace inserts it
    assert await store.get_workspace(fresh.id) == fresh


# -- interviews ---------------------------------------------------------------------------


async def test_interview_round_trip(store: SqlStore, workspace: Workspace) -> None:
    plus_two = timezone(timedelta(hours=2))
    interview = make_interview(
        workspace,
        status=Status.ENDED,
        created_at=datetime(2026, 1, 2, 17, 0, 0, 123456, tzinfo=plus_two),
        scheduled_for=T0 - timedelta(minutes=5),
        started_at=T0,
        ended_at=T0 + timedelta(minutes=31, microseconds=7),
        end_reason=EndReason.TOKENS_EXHAUSTED,
        extra_time_s=300,
        extra_tokens=5000,
        paused_total_s=12.5,
        paused_since=T0 + timedelta(minutes=10),
        tokens_used=24_999,
        warnings_sent=["time:5m", "tokens:10%"],
        room_key="C42:1700000000.1234",
        platform_data={"channel": "C42", "counter_ts": "1700000000.5", "ids": [1, 2]},
    )
    await store.add_interview(interview)

    loaded = await store.get_interview(interview.id)
    assert loaded == interview
    assert loaded is not None
    assert loaded.created_at.tzinfo is UTC
    assert loaded.created_at == datetime(2026, 1, 2, 15, 0, 0, 123456, tzinfo=UTC)
    for name in ("scheduled_for", "started_at", "ended_at", "paused_since"):
        value = getattr(loaded, name)
        assert value.tzinfo is UTC, name
    assert type(loaded.status) is Status
    assert type(loaded.end_reason) is EndReason

    # Returned objects are copies: changing one changes nothing stored.
    loaded.warnings_sent.append("local only")
    loaded.platform_data["x"] = 1
    assert await store.get_interview(interview.id) == interview
    assert await store.get_interview("no-such-id") is None


async def test_interview_defaults_round_trip(store: SqlStore, workspace: Workspace) -> None:
    interview = make_interview(workspace, status=Status.SCHEDULED, started_at=None)
    await store.add_interview(interview)
    assert await store.get_interview(interview.id) == interview


async def test_naive_datetimes_are_refused(store: SqlStore, workspace: Workspace) -> None:
    interview = make_interview(workspace, created_at=datetime(2026, 1, 2, 15, 0))
    with pytest.raises(StatementError, match="naive datetime"):
        await store.add_interview(interview)
    assert await store.get_interview(interview.id) is None


async def test_save_interview_bumps_version_and_stores_events(
    store: SqlStore, workspace: Workspace
) -> None:
    interview = make_interview(workspace)
    await store.add_interview(interview, event(interview, "created", T0))
    assert interview.version == 0

    interview.tokens_used = 1234
    interview.warnings_sent.append("time:5m")
    await store.save_interview(interview, event(interview, "warned", T0 + timedelta(minutes=25)))
    assert interview.version == 1

    loaded = await store.get_interview(interview.id)
    assert loaded == interview
    assert [e.kind for e in await store.list_audit(interview.id)] == ["created", "warned"]


async def test_stale_save_raises_conflict_and_writes_nothing(
    store: SqlStore, workspace: Workspace
) -> None:
    interview = make_interview(workspace)
    await store.add_interview(interview)
    stale = await store.get_interview(interview.id)
    assert stale is not None

    interview.tokens_used = 10
    await store.save_interview(interview)

    stale.tokens_used = 99
    with pytest.raises(Conflict, match="changed while you were acting"):
        await store.save_interview(stale, event(stale, "lost", T0))
    assert stale.version == 0
    stored = await store.get_interview(interview.id)
    assert stored is not None
    assert (stored.tokens_used, stored.version) == (10, 1)
    assert await store.list_audit(interview.id) == []


async def test_only_one_open_interview_per_candidate(store: SqlStore, workspace: Workspace) -> None:
    first = make_interview(workspace)
    await store.add_interview(first)

    second = make_interview(workspace)
    with pytest.raises(Conflict, match="U-cand> already has an active interview"):
        await store.add_interview(second, event(second, "created", T0))
    assert second.version == 0
    assert await store.get_interview(second.id) is None
    assert await store.list_audit(second.id) == []

    # A scheduled interview is not open, so it may wait beside the active one...
    scheduled = make_interview(workspace, status=Status.SCHEDULED, started_at=None)
    await store.add_interview(scheduled)
    # ... but it cannot start while the other one is still open.
    scheduled.transition(Status.ACTIVE)
    with pytest.raises(Conflict, match="already has an active interview"):
        await store.save_interview(scheduled)
    assert scheduled.version == 0

    # The same candidate in another workspace is someone else's business.
    elsewhere = await store.get_or_create_workspace("slack", "T-other")
    await store.add_interview(make_interview(elsewhere))

    first.transition(Status.ENDED)
    first.end_reason = EndReason.ENDED_BY_INTERVIEWER
    await store.save_interview(first)
    await store.save_interview(scheduled)
    assert scheduled.version == 1

    found = await store.find_open_for_candidate(workspace.id, "U-cand")
    assert found is not None and found.id == scheduled.id


async def test_room_key_is_unique_per_platform(store: SqlStore, workspace: Workspace) -> None:
    await store.add_interview(make_interview(workspace, candidate="A", room_key="C1"))
    with pytest.raises(Conflict, match="already linked"):
        await store.add_interview(make_interview(workspace, candidate="B", room_key="C1"))
    # Several interviews may have no room yet.
    await store.add_interview(make_interview(workspace, candidate="C"))
    await store.add_interview(make_interview(workspace, candidate="D"))


async def test_find_by_room_and_open_lookups(store: SqlStore, workspace: Workspace) -> None:
    other_ws = await store.get_or_create_workspace("discord", "G1")
    active = make_interview(workspace, candidate="A", room_key="C-A")
    paused = make_interview(
        workspace, candidate="B", status=Status.PAUSED, room_key="C-B", created_at=T0 + timedelta(1)
    )
    ended = make_interview(workspace, candidate="C", status=Status.ENDED, room_key="C-C")
    scheduled = make_interview(workspace, candidate="D", status=Status.SCHEDULED)
    foreign = make_interview(other_ws, candidate="A", room_key="C-A")
    for interview in (active, paused, ended, scheduled, foreign):
        await store.add_interview(interview)

    by_room = await store.find_by_room("slack", "C-A")
    assert by_room is not None and by_room.id == active.id
    by_room = await store.find_by_room("discord", "C-A")
    assert by_room is not None and by_room.id == foreign.id
    assert await store.find_by_room("slack", "nope") is None

    assert [i.id for i in await store.list_open(workspace.id)] == [active.id, paused.id]
    assert {i.id for i in await store.list_open()} == {active.id, paused.id, foreign.id}

    found = await store.find_open_for_candidate(workspace.id, "B")
    assert found is not None and found.id == paused.id
    assert await store.find_open_for_candidate(workspace.id, "C") is None
    assert await store.find_open_for_candidate(workspace.id, "D") is None


# -- turns --------------------------------------------------------------------------------


async def test_add_turn_assigns_seq_and_ignores_duplicates(
    store: SqlStore, workspace: Workspace
) -> None:
    interview = make_interview(workspace)
    other = make_interview(workspace, candidate="U-other")
    await store.add_interview(interview)
    await store.add_interview(other)

    first, second = make_turn(interview, "m1"), make_turn(interview, "m2")
    assert await store.add_turn(first) is True
    assert await store.add_turn(second) is True
    assert (first.seq, second.seq) == (1, 2)

    duplicate = make_turn(interview, "m1", content="again")
    assert await store.add_turn(duplicate) is False
    assert duplicate.seq == 0

    # Sequences are per interview, and message ids only clash within one interview.
    elsewhere = make_turn(other, "m1")
    assert await store.add_turn(elsewhere) is True
    assert elsewhere.seq == 1

    # The store still works normally after the refused duplicate.
    third = make_turn(interview, "m3")
    assert await store.add_turn(third) is True
    assert third.seq == 3
    stored = await store.list_turns(interview.id)
    assert stored == [first, second, third]
    assert stored[0].content == "question m1"
    assert all(type(t.status) is TurnStatus for t in stored)

    with pytest.raises(NotFound):
        await store.add_turn(Turn("no-such-interview", "U", "hi", "m9", T0))


async def test_save_turn_round_trip(store: SqlStore, workspace: Workspace) -> None:
    interview = make_interview(workspace)
    await store.add_interview(interview)
    turn = make_turn(interview, "m1")
    await store.add_turn(turn)

    turn.status = TurnStatus.ANSWERED
    turn.reply = "Use a hash map."
    turn.prompt_tokens, turn.completion_tokens, turn.charged_tokens = 120, 30, 150
    turn.usage_reported = True
    turn.answered_at = T0 + timedelta(seconds=9, microseconds=5)
    await store.save_turn(turn)
    assert await store.list_turns(interview.id) == [turn]

    turn.status, turn.error = TurnStatus.FAILED, "The model timed out."
    interview.tokens_used += 150
    await store.save_turn(turn, interview)
    assert interview.version == 1
    assert await store.list_turns(interview.id) == [turn]
    assert await store.get_interview(interview.id) == interview

    with pytest.raises(NotFound):
        await store.save_turn(make_turn(interview, "never-added"))


async def test_save_turn_with_stale_interview_rolls_back_the_turn(
    store: SqlStore, workspace: Workspace
) -> None:
    interview = make_interview(workspace)
    await store.add_interview(interview)
    turn = make_turn(interview, "m1")
    await store.add_turn(turn)

    stale = await store.get_interview(interview.id)
    assert stale is not None
    interview.tokens_used = 5
    await store.save_interview(interview)

    changed = replace(turn, status=TurnStatus.ANSWERED, reply="should not stick")
    stale.tokens_used = 500
    with pytest.raises(Conflict):
        await store.save_turn(changed, stale)
    assert stale.version == 0
    assert await store.list_turns(interview.id) == [turn]
    stored = await store.get_interview(interview.id)
    assert stored is not None and stored.tokens_used == 5


async def test_concurrent_add_turn_is_gapless(store: SqlStore, workspace: Workspace) -> None:
    interview = make_interview(workspace)
    await store.add_interview(interview)
    distinct = [make_turn(interview, f"m{i}") for i in range(20)]
    duplicates = [make_turn(interview, f"m{i}", content="dup") for i in (0, 3, 7, 11, 19)]
    calls = [store.add_turn(t) for t in distinct] + [store.add_turn(t) for t in duplicates]

    results = await asyncio.gather(*calls)

    assert sum(results) == 20
    stored = await store.list_turns(interview.id)
    assert [t.seq for t in stored] == list(range(1, 21))
    assert sorted(t.platform_message_id for t in stored) == sorted(f"m{i}" for i in range(20))
    # Each message kept exactly one row, and the winner knows its seq.
    winners = {t.id: t.seq for t in distinct + duplicates if t.seq}
    assert winners == {t.id: t.seq for t in stored}


# -- audit --------------------------------------------------------------------------------


async def test_audit_events_by_time_then_insertion(store: SqlStore, workspace: Workspace) -> None:
    interview = make_interview(workspace)
    later = T0 + timedelta(minutes=1)
    await store.add_interview(
        interview,
        event(interview, "created", T0, by="U-boss"),
        event(interview, "started", T0),
    )
    await store.save_interview(
        interview,
        event(interview, "paused", later),
        event(interview, "extended", later, minutes=5),
        event(interview, "note", T0 - timedelta(seconds=1)),
    )

    events = await store.list_audit(interview.id)
    assert [e.kind for e in events] == ["note", "created", "started", "paused", "extended"]
    assert events[1].detail == {"by": "U-boss"}
    assert events[4].detail == {"minutes": 5}
    assert all(e.at.tzinfo is UTC for e in events)
    assert await store.list_audit("no-such-id") == []


# -- custom challenges --------------------------------------------------------------------


def make_challenge(slug: str, title: str, **changes: Any) -> Challenge:
    fields: dict[str, Any] = {
        "slug": slug,
        "title": title,
        "difficulty": "medium",
        "description": "Do the thing.",
        "time_limit_s": 2700,
        "token_budget": 30_000,
    }
    fields.update(changes)
    return Challenge(**fields)


async def test_custom_challenges(store: SqlStore, workspace: Workspace) -> None:
    other = await store.get_or_create_workspace("slack", "T-other")
    full = make_challenge(
        "lru",
        "Team LRU",
        builtin=True,  # ignored: whatever the store returns is custom
        rubric=("correctness", "complexity"),
        system_prompt="Be terse.",
        model="gpt-4.1-mini",
        temperature=0.25,
    )
    await store.save_custom_challenge(None, make_challenge("lru", "Global LRU"))
    await store.save_custom_challenge(None, make_challenge("queue", "Global queue"))
    await store.save_custom_challenge(workspace.id, full)

    mine = await store.get_custom_challenge(workspace.id, "lru")
    assert mine == dataclasses.replace(full, builtin=False)
    assert mine is not None and isinstance(mine.rubric, tuple)

    global_lru = await store.get_custom_challenge(other.id, "lru")
    assert global_lru is not None and global_lru.title == "Global LRU"
    assert global_lru.builtin is False and global_lru.rubric == ()
    assert global_lru.temperature is None and global_lru.model is None
    none_ws = await store.get_custom_challenge(None, "lru")
    assert none_ws is not None and none_ws.title == "Global LRU"
    assert await store.get_custom_challenge(workspace.id, "missing") is None

    listed = await store.list_custom_challenges(workspace.id)
    assert [(c.slug, c.title) for c in listed] == [("lru", "Team LRU"), ("queue", "Global queue")]
    listed = await store.list_custom_challenges(other.id)
    assert [(c.slug, c.title) for c in listed] == [("lru", "Global LRU"), ("queue", "Global queue")]
    assert [c.title for c in await store.list_custom_challenges(None)] == [
        "Global LRU",
        "Global queue",
    ]

    # Saving under an existing (workspace, slug) replaces, for workspace and global alike.
    await store.save_custom_challenge(workspace.id, make_challenge("lru", "Team LRU v2"))
    await store.save_custom_challenge(None, make_challenge("queue", "Global queue v2"))
    replaced = await store.get_custom_challenge(workspace.id, "lru")
    assert replaced is not None and replaced.title == "Team LRU v2" and replaced.rubric == ()
    assert [c.title for c in await store.list_custom_challenges(workspace.id)] == [
        "Team LRU v2",
        "Global queue v2",
    ]

    await asyncio.gather(
        *(store.save_custom_challenge(None, make_challenge("race", f"v{i}")) for i in range(5))
    )
    raced = [c for c in await store.list_custom_challenges(None) if c.slug == "race"]
    assert len(raced) == 1
