"""Weekly programs, reminders, downtime and the weekly summary, on the in-memory unit of work
and a manual clock (no test sleeps); the DST rule as pure functions."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio

from adapters.llm.offline import OfflineChatModel
from core.calendar import at_wall_time, first_day, parse_clock, parse_weeks, weekly
from core.clock import ManualClock
from core.commands import parse_command
from core.dispatch import run_command
from core.errors import InvalidInput, NotFound
from core.models import EndReason, OccurrenceStatus, Status, Workspace
from core.service import EngineConfig, InterviewService
from tests.conftest import CANDIDATE, INTERVIEWER
from tests.fakes.memory_uow import MemoryDatabase, MemoryUnitOfWorkFactory
from tests.fakes.recording_platform import RecordingPlatform
from tests.fakes.store_view import StoreView

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # Monday, 10:00 in Berlin


# ---- the DST rule (pure) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "clock", "expected_utc"),
    [
        # spring forward: 02:30 does not exist; it moves forward by the gap (03:30 local)
        (NEW_YORK, date(2022, 3, 13), time(2, 30), datetime(2022, 3, 13, 7, 30, tzinfo=UTC)),
        (BERLIN, date(2026, 3, 29), time(2, 30), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        # fall back: 01:30 / 02:30 happen twice; the first one counts
        (NEW_YORK, date(2022, 11, 6), time(1, 30), datetime(2022, 11, 6, 5, 30, tzinfo=UTC)),
        (BERLIN, date(2026, 10, 25), time(2, 30), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        # an ordinary time is just itself
        (BERLIN, date(2026, 7, 3), time(15, 0), datetime(2026, 7, 3, 13, 0, tzinfo=UTC)),
    ],
)
def test_wall_times_that_do_not_exist_or_repeat(
    zone: str, day: date, clock: time, expected_utc: datetime
) -> None:
    assert at_wall_time(day, clock, zone) == expected_utc


def test_a_gap_time_is_shown_an_hour_later_and_an_ambiguous_one_runs_once() -> None:
    gap = at_wall_time(date(2022, 3, 13), time(2, 30), NEW_YORK).astimezone(ZoneInfo(NEW_YORK))
    assert (gap.hour, gap.minute) == (3, 30)
    first = at_wall_time(date(2022, 11, 6), time(1, 30), NEW_YORK)
    assert first.astimezone(ZoneInfo(NEW_YORK)).fold == 0
    assert first + timedelta(hours=1) != at_wall_time(date(2022, 11, 6), time(1, 30), NEW_YORK)


@pytest.mark.parametrize(
    ("zone", "change"), [(BERLIN, date(2026, 3, 29)), (NEW_YORK, date(2026, 3, 8))]
)
def test_a_12_week_program_stays_at_15_00_local_across_the_change(zone: str, change: date) -> None:
    first = first_day(MONDAY, 4, time(15, 0), zone)
    moments = weekly(first, time(15, 0), zone, 12)
    local = [m.astimezone(ZoneInfo(zone)) for m in moments]
    assert all((m.weekday(), m.hour, m.minute) == (4, 15, 0) for m in local)
    offsets = {m.utcoffset() for m in local}
    assert len(offsets) == 2  # the program spans the change
    assert moments[0].date() < change < moments[-1].date()
    gaps = {b - a for a, b in itertools.pairwise(moments)}
    assert gaps == {timedelta(days=7), timedelta(days=7, hours=-1)}  # one week is an hour short


def test_clock_and_weeks_are_checked() -> None:
    assert parse_clock("9:05") == time(9, 5)
    for bad in ("25:00", "12:60", "x"):
        with pytest.raises(InvalidInput, match="HH:MM"):
            parse_clock(bad)
    assert parse_weeks("52w") == 52
    for bad in ("0w", "99w"):
        with pytest.raises(InvalidInput, match="from `1w` to `52w`"):
            parse_weeks(bad)


# ---- the engine --------------------------------------------------------------------------


class World:
    def __init__(self, clock: ManualClock, db: MemoryDatabase, **config: object) -> None:
        self.clock = clock
        self.platform = RecordingPlatform()
        self.uow = MemoryUnitOfWorkFactory(db)
        self.service = InterviewService(
            self.uow,
            OfflineChatModel(),
            clock,
            {"test": self.platform},
            EngineConfig(**config),  # type: ignore[arg-type]
            owner="p",
        )
        self.store = StoreView(self.uow)

    async def workspace(self, **settings: object) -> Workspace:
        workspace = await self.store.get_or_create_workspace("test", "T1")
        if settings:
            workspace = await self.service.queries.update_settings(workspace, **settings)
        return workspace

    async def command(self, text: str, workspace: Workspace | None = None) -> str:
        ws = workspace or await self.workspace()
        command = parse_command(text, lambda w: w[1:] if w.startswith("@") else None)
        return await run_command(
            self.service, ws, INTERVIEWER, command, resolve_channel=lambda c: c.lstrip("#")
        )

    async def at(self, moment: datetime) -> None:
        """Run the bot until ``moment``: the clock stops at every job's due moment on the
        way, as a running bot would wake for it."""
        while True:
            async with self.uow() as uow:
                due = await uow.jobs.next_due()
            step = moment if due is None or due > moment else max(due, self.clock.now())
            self.clock.advance(step - self.clock.now())
            await self.service.sweep()
            await self.service.settle()
            if step >= moment:
                return

    async def jump(self, moment: datetime) -> None:
        """The clock jumps to ``moment`` with nothing run on the way (the bot was down)."""
        self.clock.advance(moment - self.clock.now())

    def dms(self, user: str) -> list[str]:
        return [text for who, text in self.platform.notices if who == user]


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    built = World(ManualClock(MONDAY), MemoryDatabase())
    yield built
    await built.service.close()


async def schedule(world: World, **kw: object) -> tuple[object, list[object]]:
    workspace = await world.workspace(timezone=BERLIN)
    return await world.service.programs.schedule(workspace, INTERVIEWER, CANDIDATE, **kw)  # type: ignore[arg-type]


async def test_defaults_are_friday_15_00_team_time_12_times(world: World) -> None:
    await world.workspace(timezone=BERLIN)
    reply = await world.command(f"schedule @{CANDIDATE}")
    (program,) = world.uow.db.programs.values()
    assert (program.weekday, program.local_time, program.count, program.timezone) == (
        4,
        "15:00",
        12,
        BERLIN,
    )
    occurrences = world.uow.db.occurrences[program.id]
    assert occurrences[0].at == datetime(2026, 3, 6, 14, 0, tzinfo=UTC)  # Friday 15:00 CET
    assert occurrences[-1].at == datetime(2026, 5, 22, 13, 0, tzinfo=UTC)  # 15:00 CEST
    assert f"Scheduled `{program.short_id}`" in reply and "12 times" in reply
    assert f"<when {occurrences[0].at.isoformat()} {BERLIN}>" in reply


async def test_day_time_weeks_limits_and_challenge_in_any_order(world: World) -> None:
    await world.workspace(timezone=BERLIN)
    await world.command(f"schedule @{CANDIDATE} lru-cache 3w 30m 10k tue 09:30")
    (program,) = world.uow.db.programs.values()
    assert (program.weekday, program.local_time, program.count) == (1, "09:30", 3)
    assert (program.challenge_slug, program.time_limit_s, program.token_budget) == (
        "lru-cache",
        1800,
        10000,
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"schedule @{CANDIDATE} fryday", "is not a day"),
        (f"schedule @{CANDIDATE} 25:00", "is not a time of day"),
        (f"schedule @{CANDIDATE} 0w", "from `1w` to `52w`"),
        (f"schedule @{CANDIDATE} 99w", "from `1w` to `52w`"),
        (f"schedule @{CANDIDATE} nope", "There is no challenge `nope`"),
        ("schedule fri", "Mention the candidate first"),
        ("unschedule zzz999", "There is no program `zzz999`"),
        ("skip zzz999", "There is no program `zzz999`"),
    ],
)
async def test_bad_input_is_refused_with_usage_and_changes_nothing(
    world: World, text: str, problem: str
) -> None:
    with pytest.raises((InvalidInput, NotFound)) as refused:
        await world.command(text)
    assert problem in str(refused.value)
    if isinstance(refused.value, InvalidInput) and "program" not in problem:
        assert "Usage: `/interview schedule" in str(refused.value) or "challenge" in problem
    assert world.uow.db.programs == {} and world.uow.db.jobs == {}


async def test_a_program_of_another_workspace_cannot_be_touched(world: World) -> None:
    program, _ = await schedule(world)
    other = await world.store.get_or_create_workspace("test", "T2")
    with pytest.raises(NotFound):
        await world.command(f"unschedule {program.short_id}", other)  # type: ignore[attr-defined]
    assert world.uow.db.programs[program.id].status.value == "active"  # type: ignore[attr-defined]


async def test_reminders_24h_1h_5m_to_both_and_a_team_note_once_each(world: World) -> None:
    await world.workspace(timezone=BERLIN, team_channel="CTEAM")
    _, occurrences = await schedule(world, weeks=1)
    at = occurrences[0].at  # type: ignore[attr-defined]
    for before, words in (
        (timedelta(hours=24), "24 hours"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(minutes=5), "5 minutes"),
    ):
        await world.at(at - before)
        await world.at(at - before + timedelta(seconds=30))  # more sweeps: still once
        for who in (CANDIDATE, INTERVIEWER.user_id):
            assert sum(f"starts in {words}:" in t for t in world.dms(who)) == 1, (who, words)
    assert "Your interview starts in 24 hours" in world.dms(CANDIDATE)[0]
    assert f"The interview with <@{CANDIDATE}> starts" in world.dms(INTERVIEWER.user_id)[0]
    assert "The private conversation will open by itself." in world.dms(CANDIDATE)[0]
    team = [t for who, t in world.platform.notices if who == "CTEAM"]
    assert len(team) == 1 and "Tomorrow" in team[0]


async def test_reminders_already_past_at_creation_are_not_sent(world: World) -> None:
    world.clock.advance(datetime(2026, 3, 5, 15, 0, tzinfo=UTC) - world.clock.now())  # Thu 16:00
    _, occurrences = await schedule(world, weeks=1)  # Fri 15:00: 23 h ahead
    keys = sorted(world.uow.db.jobs)
    assert not [k for k in keys if ":86400:" in k]
    await world.at(occurrences[0].at - timedelta(minutes=1))  # type: ignore[attr-defined]
    assert [("24 hours" in t, "1 hour" in t, "5 minutes" in t) for t in world.dms(CANDIDATE)] == [
        (False, True, False),
        (False, False, True),
    ]


async def test_the_interview_starts_by_itself_and_the_interviewer_is_told(world: World) -> None:
    program, occurrences = await schedule(world, weeks=2)
    await world.at(occurrences[0].at)  # type: ignore[attr-defined]
    (interview,) = await world.store.list_open()
    assert (interview.candidate_id, interview.interviewer_id) == (CANDIDATE, INTERVIEWER.user_id)
    assert interview.status is Status.ACTIVE and interview.challenge_slug == "two-sum"
    stored = world.uow.db.occurrences[program.id][0]  # type: ignore[attr-defined]
    assert stored.status is OccurrenceStatus.STARTED and stored.interview_id == interview.id
    assert sum("has started" in t for t in world.dms(INTERVIEWER.user_id)) == 1
    await world.at(occurrences[0].at + timedelta(minutes=2))  # type: ignore[attr-defined]
    assert len(world.platform.rooms) == 1  # once


async def test_a_busy_candidate_means_a_missed_occurrence(world: World) -> None:
    program, occurrences = await schedule(world, weeks=1)
    workspace = await world.workspace()
    await world.at(occurrences[0].at - timedelta(hours=1))  # type: ignore[attr-defined]
    await world.service.lifecycle.start(workspace, INTERVIEWER, CANDIDATE, time_limit_s=7200)
    await world.at(occurrences[0].at)  # type: ignore[attr-defined]
    stored = world.uow.db.occurrences[program.id][0]  # type: ignore[attr-defined]
    assert stored.status is OccurrenceStatus.MISSED and "another interview" in (stored.note or "")
    (told,) = [t for t in world.dms(INTERVIEWER.user_id) if "did not start" in t]
    assert "still in another interview" in told
    assert len(await world.store.list_open()) == 1


async def test_cancel_and_skip(world: World) -> None:
    program, occurrences = await schedule(world, weeks=3)
    reply = await world.command(f"skip {program.short_id}")  # type: ignore[attr-defined]
    assert "Skipped the interview of" in reply
    await world.at(occurrences[0].at + timedelta(minutes=1))  # type: ignore[attr-defined]
    assert world.dms(CANDIDATE) == [] and world.platform.rooms == {}
    await world.at(occurrences[1].at)  # type: ignore[attr-defined]
    assert len(world.platform.rooms) == 1 and len(world.dms(CANDIDATE)) == 3
    (interview,) = await world.store.list_open()
    await world.service.lifecycle.end(INTERVIEWER, interview.id)
    listed = await world.command("schedules")
    assert program.short_id in listed and "1 left" in listed  # type: ignore[attr-defined]
    cancelled = await world.command(f"unschedule {program.short_id}")  # type: ignore[attr-defined]
    assert "no more interviews or reminders" in cancelled
    before = list(world.platform.notices)
    await world.at(occurrences[2].at + timedelta(minutes=1))  # type: ignore[attr-defined]
    assert world.platform.notices == before and len(world.platform.rooms) == 1
    assert "No interviews are scheduled" in await world.command("schedules")


@pytest.mark.parametrize(
    ("down_for", "starts"), [(timedelta(minutes=5), True), (timedelta(minutes=30), False)]
)
async def test_after_downtime_within_grace_late_beyond_it_missed(
    down_for: timedelta, starts: bool
) -> None:
    db, clock = MemoryDatabase(), ManualClock(MONDAY)
    first = World(clock, db)
    program, occurrences = await schedule(first, weeks=2)
    at = occurrences[0].at  # type: ignore[attr-defined]
    await first.at(at - timedelta(hours=2))  # the 24 h reminders went out
    await first.service.close()  # the bot goes down before the 1 h and 5 min reminders
    await first.jump(at + down_for)
    second = World(clock, db)
    second.platform = first.platform
    second.service.platforms["test"] = first.platform
    try:
        await second.service.recover()
        await second.service.settle()
        stored = db.occurrences[program.id][0]  # type: ignore[attr-defined]
        reminders = [t for t in second.dms(CANDIDATE) if "starts in" in t]
        assert [("24 hours" in t) for t in reminders] == [True]  # the stale ones were dropped
        if starts:
            assert stored.status is OccurrenceStatus.STARTED and len(first.platform.rooms) == 1
        else:
            assert stored.status is OccurrenceStatus.MISSED and first.platform.rooms == {}
            (told,) = [t for t in second.dms(INTERVIEWER.user_id) if "did not start" in t]
            assert "not running" in told
        # the next week's reminders and occurrence are untouched and come on time
        await second.at(occurrences[1].at - timedelta(hours=24))  # type: ignore[attr-defined]
        assert sum("starts in 24 hours" in t for t in second.dms(CANDIDATE)) == 2
    finally:
        await second.service.close()


async def test_an_overdue_interview_is_closed_once_at_start_up() -> None:
    db, clock = MemoryDatabase(), ManualClock(MONDAY)
    first = World(clock, db)
    workspace = await first.workspace()
    interview = await first.service.lifecycle.start(
        workspace, INTERVIEWER, CANDIDATE, time_limit_s=600
    )
    await first.service.close()
    await first.jump(clock.now() + timedelta(hours=3))
    second = World(clock, db)
    try:
        await second.service.recover()
        await second.service.recover()
        assert [i for i, _ in second.platform.closed] == [interview.id]
        stored = await second.store.get_interview(interview.id)
        assert stored is not None and stored.end_reason is EndReason.TIME_UP
    finally:
        await second.service.close()


# ---- the weekly summary ------------------------------------------------------------------


async def test_the_weekly_summary_of_a_scripted_week(world: World) -> None:
    workspace = await world.workspace(timezone=BERLIN, interviewer_channel="CEVAL")
    lifecycle = world.service.lifecycle
    # Monday: a 10-minute interview that runs out of time
    a = await lifecycle.start(workspace, INTERVIEWER, "UA", time_limit_s=600)
    await world.at(world.clock.now() + timedelta(minutes=11))
    # an interview the interviewer ends after 5 of 20 minutes
    b = await lifecycle.start(workspace, INTERVIEWER, "UB", time_limit_s=1200)
    world.clock.advance(300)
    await lifecycle.end(INTERVIEWER, b.id)
    await world.service.recover()  # arms the summary (Friday 17:00 Berlin)
    summary_at = datetime(2026, 3, 6, 16, 0, tzinfo=UTC)
    await world.at(summary_at - timedelta(minutes=30))
    # one still running at the summary, and one scheduled for next Monday
    await lifecycle.start(workspace, INTERVIEWER, "UC", time_limit_s=3600)
    await world.service.programs.schedule(workspace, INTERVIEWER, "UD", weekday=0, weeks=1)
    await world.at(summary_at)
    await world.at(summary_at + timedelta(minutes=3))
    (posted,) = [t for who, t in world.platform.notices if who == "CEVAL"]
    assert (
        "3 held: 1 completed (ran their full time), 1 ended early (1 ended by interviewer), "
        "1 still running" in posted
    )
    # time: a used 100 %, b 25 % -> 62 %; tokens: none used
    assert "on average 62% of the time and 0% of the tokens were used" in posted
    assert "Scheduled for the next 7 days:" in posted and "<@UD>" in posted
    assert a.id and f"<when {summary_at.isoformat()} {BERLIN}>" in posted
    # next week's summary is armed once
    assert sum(k.startswith("summary:") for k in world.uow.db.jobs) == 2


async def test_summary_settings_and_the_private_summary(world: World) -> None:
    workspace = await world.workspace(timezone=BERLIN, team_channel="CTEAM")
    reply = await world.command("config summary off", workspace)
    assert reply == "Weekly summaries are off here."
    await world.service.recover()
    await world.at(datetime(2026, 3, 6, 16, 1, tzinfo=UTC))
    assert [t for who, t in world.platform.notices if who == "CTEAM"] == []
    reply = await world.command("config summary mon 09:00", workspace)
    assert reply == "Weekly summaries: Mondays at 09:00 team time."
    await world.at(datetime(2026, 3, 9, 8, 0, tzinfo=UTC))  # Monday 09:00 Berlin
    assert len([t for who, t in world.platform.notices if who == "CTEAM"]) == 1
    private = await world.command("summary", workspace)
    assert private.startswith("📊 Interviews in the 7 days before")
    with pytest.raises(InvalidInput, match="Say a day and a time"):
        await world.command("config summary sometime", workspace)


async def test_the_environment_default_and_its_off(world: World) -> None:
    off = World(
        ManualClock(MONDAY), MemoryDatabase(), weekly_summary=None, team_channels={"test": "CENV"}
    )
    try:
        await off.workspace()
        await off.service.recover()
        await off.at(datetime(2026, 3, 6, 17, 1, tzinfo=UTC))
        assert off.platform.notices == []
        workspace = await off.workspace()
        await off.command("config summary fri 18:00", workspace)  # the workspace wins
        await off.at(datetime(2026, 3, 6, 18, 1, tzinfo=UTC))
        assert [who for who, _ in off.platform.notices] == ["CENV"]
    finally:
        await off.service.close()


async def test_a_program_has_its_own_reminders_or_none(world: World) -> None:
    await world.workspace(timezone=BERLIN)
    reply = await world.command(f"schedule @{CANDIDATE} remind:10m 1w")
    assert "Reminders go out 10m before each." in reply
    quiet = await world.command("schedule @U_OTHER remind:off 1w")
    assert "No reminders." in quiet
    own, silent = sorted(world.uow.db.programs.values(), key=lambda p: p.candidate_id != CANDIDATE)
    assert own.reminders_s == [600] and silent.reminders_s == []
    (occurrence,) = world.uow.db.occurrences[own.id]
    await world.at(occurrence.at)
    assert (
        [t for t in world.dms(CANDIDATE) if "starts in" in t]
        == [t for t in world.dms(CANDIDATE) if "starts in 10 minutes" in t]
        != []
    )
    assert [t for t in world.dms("U_OTHER") if "starts in" in t] == []
    with pytest.raises(InvalidInput, match="Usage"):
        await world.command(f"schedule @{CANDIDATE} remind:soon")
