"""Data protection: everything stored about a person exported, purged, and RETENTION_DAYS.

The data is written by the engine's own use cases (interviews with turns, extensions and
reports, programs with reminders), on SQLite and PostgreSQL (the ``database`` fixture); the
CLI runs end to end as ``python -m bot export/purge`` on an SQLite file.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from adapters.llm.offline import OfflineChatModel, OfflineJudge
from bench.fakes.processes import bot_env
from core.clock import ManualClock
from core.models import Actor, Interview
from core.ports import PurgeCounts, UnitOfWorkFactory
from core.retention import retention_key
from core.service import EngineConfig, InterviewService
from storage import UnitOfWorkFactory as SqlUnitOfWorkFactory
from storage import create_uow_factory, upgrade
from storage.privacy import Person
from storage.tables import metadata, rate_limits
from tests.conftest import Backend
from tests.fakes.memory_uow import MemoryUnitOfWorkFactory
from tests.fakes.recording_platform import RecordingPlatform

IVY = Actor("UIVY", is_interviewer=True)
ALICE, BOB, CAROL = "UALICE", "UBOB", "UCAROL"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
CHART = b"\x89PNG a chart"


def chart(timeline: object) -> bytes:
    return CHART


def build(
    uow: UnitOfWorkFactory, clock: ManualClock, owner: str = "p1", **config: object
) -> InterviewService:
    platforms = {name: RecordingPlatform(name=name) for name in ("slack", "discord")}
    return InterviewService(
        uow,
        OfflineChatModel(),
        clock,
        dict(platforms),
        EngineConfig(**config),  # type: ignore[arg-type]
        owner=owner,
        judge=OfflineJudge(),
        render_chart=chart,
    )


async def session(
    service: InterviewService,
    where: tuple[str, str],
    candidate: str,
    messages: list[str],
    *,
    end: bool = True,
) -> Interview:
    """An interview run by IVY: messages answered, +5 minutes, ended (report built)."""
    platform, external_id = where
    workspace = await service.queries.workspace(platform, external_id)
    interview = await service.lifecycle.start(
        workspace, IVY, candidate, time_limit_s=1800, token_budget=20_000
    )
    assert interview.room_key
    for n, text in enumerate(messages):
        await service.turns.handle_message(
            platform, interview.room_key, candidate, f"{interview.id}-{n}", text
        )
    await service.lifecycle.extend(IVY, interview.id, seconds=300)
    if end:
        await service.lifecycle.end(IVY, interview.id)
    await service.settle()
    return interview


@dataclass
class Scene:
    alice_t1: Interview
    bob: Interview
    alice_t2: Interview
    alice_open: Interview  # still running, in T2
    alice_discord: Interview  # the same user id on another platform
    alice_program: str
    bob_program: str

    @property
    def alice_purged(self) -> list[str]:
        """What ``purge --candidate slack:UALICE`` deletes: her ended interviews, program."""
        return [self.alice_t1.id, self.alice_t2.id, self.alice_program]


async def populate(service: InterviewService, clock: ManualClock) -> Scene:
    t1 = ("slack", "T1")
    a1 = await session(service, t1, ALICE, ["alice asks about hashing", "alice writes tests"])
    clock.advance(600)
    bob = await session(service, t1, BOB, ["bob asks about sorting"])
    clock.advance(600)
    a2 = await session(service, ("slack", "T2"), ALICE, ["alice in the second team"])
    clock.advance(600)
    still = await session(service, ("slack", "T2"), ALICE, ["alice still working"], end=False)
    discord = await session(service, ("discord", "G1"), ALICE, ["alice on discord"])
    team = await service.queries.workspace(*t1)
    alice_program, _ = await service.programs.schedule(team, IVY, ALICE, weeks=2)
    bob_program, _ = await service.programs.schedule(team, IVY, BOB, weeks=2)
    await service.queries.update_settings(team, interviewers=[IVY.user_id])
    await service.settle()
    return Scene(a1, bob, a2, still, discord, alice_program.id, bob_program.id)


@pytest_asyncio.fixture
async def scene(database: UnitOfWorkFactory) -> AsyncIterator[Scene]:
    service = build(database, ManualClock(START))
    try:
        yield await populate(service, service.ctx.clock)  # type: ignore[arg-type]
    finally:
        await service.close()


async def export(database: UnitOfWorkFactory, person: Person) -> dict[str, object]:
    assert isinstance(database, SqlUnitOfWorkFactory)
    async with database() as uow:
        return await uow.sql_privacy.export_person(person, START)


async def dump(database: UnitOfWorkFactory) -> dict[str, set[str]]:
    """Every row of every table, as text."""
    assert isinstance(database, SqlUnitOfWorkFactory)
    rows: dict[str, set[str]] = {}
    async with database.engine.connect() as conn:
        for table in metadata.sorted_tables:
            found = (await conn.execute(sa.select(table))).all()
            rows[table.name] = {repr(tuple(row)) for row in found}
    return rows


async def job_keys(database: UnitOfWorkFactory) -> set[str]:
    assert isinstance(database, SqlUnitOfWorkFactory)
    async with database.engine.connect() as conn:
        return set((await conn.execute(sa.text("SELECT key FROM jobs"))).scalars())


def naming(rows: set[str], *needles: str) -> set[str]:
    return {row for row in rows if any(needle in row for needle in needles)}


# ---------------------------------------------------------------- export


async def test_export_holds_the_candidates_data_and_nothing_of_anyone_else(
    database: UnitOfWorkFactory, scene: Scene
) -> None:
    data = await export(database, Person("slack", ALICE))
    text = json.dumps(data)
    interviews = {i["id"]: i for i in data["interviews"]}  # type: ignore[attr-defined]
    assert set(interviews) == {scene.alice_t1.id, scene.alice_t2.id, scene.alice_open.id}
    assert {i["role"] for i in interviews.values()} == {"candidate"}
    assert data["person"] == {
        "platform": "slack",
        "user_id": ALICE,
        "workspace": None,
        "workspaces": ["T1", "T2"],
    }
    first = interviews[scene.alice_t1.id]
    assert first["workspace"] == "T1" and first["candidate_id"] == ALICE
    assert first["interviewer_id"] == IVY.user_id and first["status"] == "ended"
    assert [t["content"] for t in first["turns"]] == [
        "alice asks about hashing",
        "alice writes tests",
    ]
    assert all(t["reply"] for t in first["turns"])
    kinds = [e["kind"] for e in first["audit_events"]]
    assert kinds[:2] == ["created", "started"] and {"extended", "ended"} <= set(kinds)
    report = first["report"]
    assert base64.b64decode(report["chart_png_base64"]) == CHART
    assert report["chart_png_bytes"] == len(CHART)
    assert "alice asks about hashing" in report["transcript_md"]
    assert report["metrics"] and report["evaluation"]
    running = interviews[scene.alice_open.id]
    assert running["status"] == "active" and running["report"] is None
    (program,) = data["programs"]  # type: ignore[misc]
    assert program["id"] == scene.alice_program and program["role"] == "candidate"
    assert program["candidate_id"] == ALICE and len(program["occurrences"]) == 2
    # The jobs naming her: her interviews' and her program's (reminders to her among them).
    keys = {j["key"] for j in data["jobs"]}  # type: ignore[attr-defined]
    mine = [scene.alice_t1.id, scene.alice_t2.id, scene.alice_open.id, scene.alice_program]
    expected = {key for key in await job_keys(database) if any(m in key for m in mine)}
    assert keys == expected and any(k.endswith(f":{ALICE}") for k in keys)
    assert data["workspace_settings"] == []
    for foreign in (
        BOB,
        scene.bob.id,
        scene.bob_program,
        "bob asks",
        scene.alice_discord.id,
        "alice on discord",
        "G1",
    ):
        assert foreign not in text, foreign


async def test_one_workspace_only_with_workspace(database: UnitOfWorkFactory, scene: Scene) -> None:
    data = await export(database, Person("slack", ALICE, "T2"))
    ids = {i["id"] for i in data["interviews"]}  # type: ignore[attr-defined]
    assert ids == {scene.alice_t2.id, scene.alice_open.id}
    assert data["programs"] == [] and scene.alice_t1.id not in json.dumps(data)


async def test_an_interviewers_export_shows_what_they_did_not_the_candidates(
    database: UnitOfWorkFactory, scene: Scene
) -> None:
    data = await export(database, Person("slack", IVY.user_id))
    text = json.dumps(data)
    interviews = data["interviews"]
    assert {i["id"] for i in interviews} == {  # type: ignore[attr-defined]
        scene.alice_t1.id,
        scene.bob.id,
        scene.alice_t2.id,
        scene.alice_open.id,
    }
    for interview in interviews:  # type: ignore[attr-defined]
        assert interview["role"] == "interviewer"
        assert "turns" not in interview and "report" not in interview
        assert {e["actor_id"] for e in interview["audit_events"]} == {IVY.user_id}
    assert [p["role"] for p in data["programs"]] == ["interviewer", "interviewer"]  # type: ignore[attr-defined]
    keys = [j["key"] for j in data["jobs"]]  # type: ignore[attr-defined]
    assert keys and all(k.startswith("reminder:") and k.endswith(":UIVY") for k in keys)
    assert data["workspace_settings"] == [{"workspace": "T1", "setting": "interviewers"}]
    for foreign in (ALICE, BOB, "alice asks", "bob asks", "transcript", "room-"):
        assert foreign not in text, foreign


async def test_nothing_stored_about_a_stranger(database: UnitOfWorkFactory, scene: Scene) -> None:
    data = await export(database, Person("slack", "UNOBODY"))
    assert [data[k] for k in ("interviews", "programs", "jobs", "workspace_settings")] == [
        [],
        [],
        [],
        [],
    ]


# ---------------------------------------------------------------- purge


async def test_purging_a_candidate_deletes_exactly_their_ended_data(
    database: UnitOfWorkFactory, scene: Scene
) -> None:
    assert isinstance(database, SqlUnitOfWorkFactory)
    async with database.engine.begin() as conn:  # the rate limiter's rows of each interview
        for interview_id in (scene.alice_t1.id, scene.alice_t2.id, scene.alice_open.id):
            for prefix in ("candidate:", "notice:"):
                await conn.execute(
                    sa.insert(rate_limits).values(key=prefix + interview_id, tat=1.0)
                )
    before = await dump(database)
    assert isinstance(database, SqlUnitOfWorkFactory)
    async with database() as uow:
        counts = await uow.sql_privacy.purge_person(Person("slack", ALICE))
        await uow.commit()
    after = await dump(database)
    gone = scene.alice_purged
    assert counts == PurgeCounts(
        interviews=2,
        turns=3,
        audit_events=len(naming(before["audit_events"], *gone)),
        reports=2,
        programs=1,
        occurrences=2,
        jobs=len(naming(before["jobs"], *gone)),
        open_kept=1,
    )
    assert counts.audit_events >= 8 and counts.jobs >= 8
    for table, rows in before.items():  # every other row is untouched
        assert after[table] == rows - naming(rows, *gone), table
    # What still names her: the running interview (T2) and Discord's user of the same id.
    limits = {row for row in after["rate_limits"] if scene.alice_open.id in row}
    assert len(limits) == 2 and not naming(after["rate_limits"], *gone)  # hers went too
    left = [row for rows in after.values() for row in naming(rows, ALICE)]
    assert left and all(scene.alice_open.id in row or scene.alice_discord.id in row for row in left)
    async with database() as uow:
        again = await uow.sql_privacy.purge_person(Person("slack", ALICE))
    assert again == PurgeCounts(open_kept=1)

    # Once it has ended, the running interview goes too.
    service = build(database, ManualClock(START + timedelta(hours=1)))
    try:
        await service.lifecycle.end(IVY, scene.alice_open.id)
        await service.settle()
    finally:
        await service.close()
    async with database() as uow:
        last = await uow.sql_privacy.purge_person(Person("slack", ALICE))
        await uow.commit()
    assert (last.interviews, last.turns, last.reports, last.open_kept) == (1, 1, 1, 0)
    remaining = [row for rows in (await dump(database)).values() for row in naming(rows, ALICE)]
    assert remaining and all(scene.alice_discord.id in row for row in remaining)


async def test_purge_before_a_moment_keeps_newer_and_open_interviews(
    database: UnitOfWorkFactory, scene: Scene
) -> None:
    async with database() as uow:
        early = await uow.privacy.purge_before(START + timedelta(seconds=900))
        await uow.commit()
    # alice_t1 ended at START, bob at +600 s; alice_t2 at +1200 s; programs lie ahead.
    assert (early.interviews, early.turns, early.reports, early.programs) == (2, 3, 2, 0)
    rows = await dump(database)
    assert not naming(rows["interviews"], scene.alice_t1.id, scene.bob.id)
    assert naming(rows["interviews"], scene.alice_t2.id)
    async with database() as uow:
        late = await uow.privacy.purge_before(datetime(2026, 2, 1, tzinfo=UTC))
        await uow.commit()
    assert (late.interviews, late.programs, late.occurrences, late.open_kept) == (2, 2, 4, 1)
    rows = await dump(database)
    assert [r for r in rows["interviews"] if scene.alice_open.id in r] and len(
        rows["interviews"]
    ) == 1
    assert rows["programs"] == set() and rows["reports"] == set()
    assert all(scene.alice_open.id in row for row in rows["turns"] | rows["audit_events"])


async def test_the_memory_fake_purges_like_the_database(
    database: UnitOfWorkFactory, scene: Scene
) -> None:
    memory = MemoryUnitOfWorkFactory()
    service = build(memory, ManualClock(START))
    try:
        await populate(service, service.ctx.clock)  # type: ignore[arg-type]
    finally:
        await service.close()
    # ended before it; programs created before it but with occurrences after; all before it
    moments = (START + timedelta(seconds=900), START + timedelta(days=1), datetime(2026, 2, 1))
    for moment in (m.replace(tzinfo=UTC) for m in moments):
        async with database() as uow:
            expected = await uow.privacy.purge_before(moment)
            await uow.commit()
        async with memory() as uow:
            assert await uow.privacy.purge_before(moment) == expected


# ---------------------------------------------------------------- RETENTION_DAYS


def count_purges(service: InterviewService) -> list[PurgeCounts | None]:
    runs: list[PurgeCounts | None] = []
    purge = service.retention.purge

    async def counted() -> PurgeCounts | None:
        runs.append(await purge())
        return runs[-1]

    service.retention.purge = counted  # type: ignore[method-assign]
    return runs


def midnight_after(moment: datetime) -> datetime:
    return datetime.combine(moment.date() + timedelta(days=1), time(), UTC)


async def interview_ids(database: UnitOfWorkFactory) -> set[str]:
    """Every stored interview (ended or not)."""
    if isinstance(database, MemoryUnitOfWorkFactory):
        return set(database.db.interviews)
    assert isinstance(database, SqlUnitOfWorkFactory)
    async with database.engine.connect() as conn:
        return set((await conn.execute(sa.text("SELECT id FROM interviews"))).scalars())


async def old_and_new(database: UnitOfWorkFactory, clock: ManualClock) -> list[Interview]:
    """Ended at START, a paused one from START (open), ended at START + 25 days."""
    service = build(database, clock, "writer")
    try:
        old = await session(service, ("slack", "T1"), ALICE, ["old question"])
        paused = await session(service, ("slack", "T1"), CAROL, ["paused q"], end=False)
        await service.lifecycle.pause(IVY, paused.id)
        clock.advance(timedelta(days=25))
        recent = await session(service, ("slack", "T1"), BOB, ["recent question"])
    finally:
        await service.close()
    return [old, paused, recent]


async def test_retention_purges_once_a_day_across_restarts(database: UnitOfWorkFactory) -> None:
    clock = ManualClock(START)
    _old, paused, recent = await old_and_new(database, clock)
    clock.advance(timedelta(days=10))  # the old one ended 35 days ago, the recent one 10
    first = build(database, clock, "p1", retention_days=30)
    runs = count_purges(first)
    try:
        await first.recover()
        await first.settle()
        assert len(runs) == 1 and runs[0] is not None
        assert (runs[0].interviews, runs[0].turns, runs[0].reports) == (1, 1, 1)
        assert runs[0].open_kept == 1
        assert await interview_ids(database) == {paused.id, recent.id}
    finally:
        await first.close()
    async with database() as uow:
        today = await uow.jobs.get(retention_key(clock.now().date()))
        tomorrow = await uow.jobs.get(retention_key(clock.now().date() + timedelta(days=1)))
    assert today is not None and today.done_at is not None and today.attempts == 1
    assert tomorrow is not None and tomorrow.done_at is None
    assert tomorrow.due_at == midnight_after(clock.now())

    second = build(database, clock, "p2", retention_days=30)  # a restart the same day
    runs = count_purges(second)
    try:
        await second.recover()
        await second.settle()
        assert runs == []
        clock.advance(midnight_after(clock.now()) - clock.now())
        await second.settle()
        assert len(runs) == 1 and runs[0] is not None and runs[0].interviews == 0
        clock.advance(timedelta(days=20))  # the recent one is now 31 days old
        await second.settle()
        assert len(runs) == 2 and runs[1] is not None and runs[1].interviews == 1
        assert await interview_ids(database) == {paused.id}
    finally:
        await second.close()


async def test_without_retention_days_nothing_is_purged_or_armed(
    database: UnitOfWorkFactory,
) -> None:
    clock = ManualClock(START)
    interviews = await old_and_new(database, clock)
    clock.advance(timedelta(days=400))
    service = build(database, clock)
    try:
        await service.recover()
        await service.settle()
    finally:
        await service.close()
    assert await interview_ids(database) == {i.id for i in interviews}
    async with database() as uow:
        assert await uow.jobs.get(retention_key(clock.now().date())) is None


async def test_retention_on_the_memory_fake() -> None:
    memory = MemoryUnitOfWorkFactory()
    clock = ManualClock(START)
    old, paused, recent = await old_and_new(memory, clock)
    clock.advance(timedelta(days=10))
    service = build(memory, clock, retention_days=30)
    try:
        await service.recover()
        await service.settle()
    finally:
        await service.close()
    assert set(memory.db.interviews) == {paused.id, recent.id}
    assert old.id not in memory.db.turns and old.id not in memory.db.reports


@pytest_asyncio.fixture
async def second_database(backend: Backend) -> AsyncIterator[UnitOfWorkFactory]:
    """Another engine on the same database (its own pool, as another process has)."""
    if backend.name == "sqlite":
        pytest.skip("SQLite serves one process; two processes need PostgreSQL")
    factory = create_uow_factory(backend.url, connect_args=backend.connect_args)
    yield factory
    await factory.close()


async def test_two_processes_purge_once_a_day(
    database: UnitOfWorkFactory, second_database: UnitOfWorkFactory
) -> None:
    clock = ManualClock(START)
    _old, paused, recent = await old_and_new(database, clock)
    clock.advance(timedelta(days=10))
    a = build(database, clock, "A", retention_days=30)
    b = build(second_database, clock, "B", retention_days=30)
    runs_a, runs_b = count_purges(a), count_purges(b)
    try:
        await asyncio.gather(a.recover(), b.recover())
        await asyncio.gather(a.settle(), b.settle())
        assert len(runs_a) + len(runs_b) == 1
        assert await interview_ids(database) == {paused.id, recent.id}
        clock.advance(midnight_after(clock.now()) - clock.now())
        for _ in range(3):
            await asyncio.gather(a.settle(), b.settle(), a.sweep(), b.sweep())
        assert len(runs_a) + len(runs_b) == 2
    finally:
        await a.close()
        await b.close()
    async with database() as uow:
        day = await uow.jobs.get(retention_key(clock.now().date()))
    assert day is not None and day.done_at is not None and day.attempts == 1


# ---------------------------------------------------------------- the CLI, end to end


async def cli(cwd: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=bot_env(cwd),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def count(cwd: Path, query: str) -> int:
    with sqlite3.connect(cwd / "bot.db") as db:
        return int(db.execute(query).fetchone()[0])


async def test_cli_exports_and_purges_end_to_end(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/bot.db"  # where bot_env points DATABASE_URL
    await upgrade(url)
    database = create_uow_factory(url)
    service = build(database, ManualClock(START))
    try:
        scene = await populate(service, service.ctx.clock)  # type: ignore[arg-type]
    finally:
        await service.close()
        await database.close()

    code, out, err = await cli(tmp_path, "export", "--candidate", "slack:UALICE")
    assert code == 0, err
    data = json.loads(out)
    assert {i["id"] for i in data["interviews"]} == {
        scene.alice_t1.id,
        scene.alice_t2.id,
        scene.alice_open.id,
    }
    assert "bob asks" not in out and "Traceback" not in err

    args = ("export", "--candidate", "slack:UALICE", "--workspace", "T2", "-o", "alice.json")
    code, out, err = await cli(tmp_path, *args)
    assert code == 0 and out == "", err
    assert "Wrote 2 interviews, 0 programs and" in err and "alice.json" in err
    written = json.loads((tmp_path / "alice.json").read_text())
    assert {i["id"] for i in written["interviews"]} == {scene.alice_t2.id, scene.alice_open.id}

    audit = count(
        tmp_path,
        "SELECT count(*) FROM audit_events WHERE interview_id IN "
        f"('{scene.alice_t1.id}', '{scene.alice_t2.id}')",
    )
    planned = f"Delete 2 interviews, 3 turns, {audit} audit events, 2 reports, 1 program"
    code, out, err = await cli(tmp_path, "purge", "--candidate", "slack:UALICE", stdin="n\n")
    assert code == 1 and planned in err and "Aborted" in err, err
    assert count(tmp_path, "SELECT count(*) FROM interviews WHERE candidate_id = 'UALICE'") == 4

    code, out, err = await cli(tmp_path, "purge", "--candidate", "slack:UALICE", stdin="y\n")
    assert code == 0, err
    assert f"Deleted 2 interviews, 3 turns, {audit} audit events, 2 reports, 1 program" in out
    assert "1 open interview was left alone" in out
    assert count(tmp_path, "SELECT count(*) FROM interviews WHERE candidate_id = 'UALICE'") == 2
    assert count(tmp_path, f"SELECT count(*) FROM programs WHERE id = '{scene.alice_program}'") == 0

    code, out, err = await cli(tmp_path, "purge", "--before", "2026-02-01", "--yes")
    assert code == 0, err
    assert out.startswith("Deleted 2 interviews, 2 turns,") and "1 program" in out, out
    assert "1 open interview was left alone" in out
    assert count(tmp_path, "SELECT count(*) FROM interviews") == 1
    code, out, _ = await cli(tmp_path, "purge", "--before", "2026-02-01", "--yes")
    assert code == 0 and out.startswith("Nothing stored that ended before 2026-02-01"), out

    code, _, err = await cli(tmp_path, "purge", "--candidate", "alice", "--yes")
    assert code == 2 and "is not platform:id" in err
    code, _, err = await cli(tmp_path, "purge", "--yes")
    assert code == 2 and "exactly one of --candidate" in err
    assert count(tmp_path, "SELECT count(*) FROM interviews") == 1
