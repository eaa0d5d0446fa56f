"""Weekly interviews on Discord: ``/interview schedule|schedules|unschedule|skip|summary`` and
``config summary|team_channel``, through the real discord.py client, the fake Discord and the
bot's runtime. The runtime's clock is manual and far in the future (APScheduler's real-time
wake-ups never come during a test); tests move it to each moment and run the due jobs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from adapters.discord.commands import DISCORD_HELP, DISCORD_USAGE
from bench.fakes.discord_server import GUILD_TEXT
from core.calendar import MAX_WEEKS
from core.clock import ManualClock
from core.commands import USAGE
from core.models import Occurrence, OccurrenceStatus, Program, ProgramStatus, Status
from tests.test_discord import DiscordWorld, discord_world

# Monday 3 March 2031, 09:00 UTC = 10:00 in Berlin (CET, before the change on 30 March).
START = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)
BERLIN = "Europe/Berlin"
USER, STRING, INTEGER = 6, 3, 4  # option types of a raw option list
SCHEDULE_USAGE = f"Usage: `{DISCORD_USAGE['schedule']}`"


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[DiscordWorld]:
    async with discord_world(tmp_path, ManualClock(START), reminders="5m,1m") as built:
        yield built


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def content(reply: dict[str, Any]) -> str:
    text: str = reply["data"]["content"]
    return text


async def berlin(world: DiscordWorld) -> None:
    reply = await world.slash("config timezone", world.interviewer, timezone=BERLIN)
    assert content(reply) == f"Team time zone set to {BERLIN}."


async def programs(world: DiscordWorld) -> list[Program]:
    workspace = await world.workspace()
    async with world.service.ctx.uow() as uow:
        return await uow.programs.list_active(workspace.id)


async def occurrences(world: DiscordWorld, program: Program) -> list[Occurrence]:
    async with world.service.ctx.uow() as uow:
        return await uow.programs.occurrences(program.id)


async def at(world: DiscordWorld, moment: datetime, *, runs: int = 1) -> None:
    """Move the clock to ``moment`` and run the due jobs ``runs`` times."""
    world.clock.advance(moment - world.clock.now())
    for _ in range(runs):
        await world.run_due()


async def text_channel(world: DiscordWorld, name: str, *, announce: bool = True) -> int:
    """A new text channel; ``announce``: Discord tells the bot (CHANNEL_CREATE), as it does
    when someone creates one, so it is in discord.py's cache."""
    fake = world.discord
    channel = fake.add_text_channel(world.ids.guild_id, name)
    if announce:
        await fake.dispatch("CHANNEL_CREATE", fake.channel_payload(channel))
        client = world.adapter.client
        await world.eventually(lambda: client.get_channel(channel) is not None)
    return channel


def schedule_options(world: DiscordWorld, *extra: dict[str, Any]) -> list[dict[str, Any]]:
    """A raw option list: values Discord's client would not send reach the bot as they are."""
    return [{"name": "candidate", "type": USER, "value": str(world.candidate)}, *extra]


# ---- refusals -------------------------------------------------------------------------------


async def test_bad_input_is_refused_privately_with_usage_and_changes_nothing(
    world: DiscordWorld,
) -> None:
    def refused(reply: dict[str, Any], expected: str) -> str:
        text = content(reply)
        assert text.startswith("❌") and expected in text, text
        assert reply["data"]["flags"] & 64  # ephemeral
        return text

    who = {"candidate": world.candidate}
    for options, expected in (
        ({**who, "time": "25:00"}, "`25:00` is not a time of day; use 24-hour HH:MM"),
        ({**who, "time": "noon"}, "`noon` is not a time of day"),
        ({**who, "challenge": "nope"}, "There is no challenge `nope`. Known challenges:"),
        ({**who, "tokens": 10}, "too small"),
        ({"candidate": world.interviewer}, "You can't interview yourself"),
    ):
        reply = await world.slash_with("schedule", world.interviewer, options)
        text = refused(reply, expected)
        assert text.endswith(SCHEDULE_USAGE), text
        assert "@candidate" not in text  # the Discord form, not the text command's

    # Discord's client offers only the days and keeps the weeks within 1..52: the user can't
    # send anything else ...
    command = world.discord.find_command("interview", world.ids.guild_id)
    schedule = next(o for o in command["options"] if o["name"] == "schedule")
    weeks = next(o for o in schedule["options"] if o["name"] == "weeks")
    assert (weeks["min_value"], weeks["max_value"]) == (1, MAX_WEEKS)
    for bad in (0, 99):
        with pytest.raises(ValueError, match="outside"):
            await world.slash("schedule", world.interviewer, **who, weeks=bad)
    with pytest.raises(ValueError, match="not a choice"):
        await world.slash("schedule", world.interviewer, **who, day="someday")
    # ... and what reaches the bot anyway (another client, an old version of the command) is
    # refused the same friendly way.
    for option, expected in (
        ({"name": "weeks", "type": INTEGER, "value": 0}, "`weeks` must be from 1 to 52"),
        ({"name": "weeks", "type": INTEGER, "value": 99}, "`weeks` must be from 1 to 52"),
        ({"name": "day", "type": STRING, "value": "someday"}, "`someday` is not a day"),
        ({"name": "minutes", "type": INTEGER, "value": 0}, "at least 1 minute"),
    ):
        reply = await world.slash_with(
            "schedule", world.interviewer, schedule_options(world, option)
        )
        assert refused(reply, expected).endswith(SCHEDULE_USAGE)

    for sub in ("unschedule", "skip"):
        reply = await world.slash(sub, world.interviewer, program="zzz999")
        text = refused(reply, "There is no program `zzz999` here.")
        assert text.endswith(f"Usage: `{DISCORD_USAGE[sub]}`"), text

    for when, expected in (
        ("someday 17:00", "`someday` is not a day"),
        ("fri 25:00", "`25:00` is not a time of day"),
        ("fri", "Say a day and a time"),
    ):
        refused(await world.slash("config summary", world.interviewer, when=when), expected)
    refused(
        await world.slash("config timezone", world.interviewer, timezone="Mars/Olympus"),
        "`Mars/Olympus` is not a time zone",
    )

    assert await programs(world) == []
    workspace = await world.workspace()
    assert not {"summary", "timezone", "team_channel"} & workspace.settings.keys()
    await at(world, START + timedelta(days=8))
    assert world.discord.threads == {}
    assert world.discord.dm_messages(world.candidate) == []
    assert world.discord.dm_messages(world.interviewer) == []


async def test_non_interviewers_are_refused_privately_and_nothing_changes(
    world: DiscordWorld,
) -> None:
    await world.slash("schedule", world.interviewer, candidate=world.candidate, weeks=2)
    (program,) = await programs(world)
    before = await occurrences(world, program)
    for sub, options in (
        ("schedule", {"candidate": world.candidate}),
        ("schedules", {}),
        ("unschedule", {"program": program.short_id}),
        ("skip", {"program": program.short_id}),
        ("summary", {}),
        ("config summary", {"when": "off"}),
        ("config team_channel", {"channel": world.ids.channel_id}),
    ):
        reply = await world.slash_with(sub, world.stranger, options)
        assert content(reply).startswith("❌ Only interviewers"), (sub, reply)
        assert reply["data"]["flags"] & 64
    (still,) = await programs(world)
    assert still.status is ProgramStatus.ACTIVE
    assert await occurrences(world, program) == before
    workspace = await world.workspace()
    assert not {"summary", "team_channel"} & workspace.settings.keys()


# ---- schedule, list, skip, cancel ---------------------------------------------------------


async def test_schedule_is_listed_with_its_id_next_time_and_count_then_skip_and_unschedule(
    world: DiscordWorld,
) -> None:
    await berlin(world)
    reply = await world.slash(
        "schedule",
        world.interviewer,
        candidate=world.candidate,
        day="wed",
        time="15:00",
        weeks=3,
        minutes=30,
        challenge="lru-cache",
    )
    (program,) = await programs(world)
    first = datetime(2031, 3, 5, 14, 0, tzinfo=UTC)  # Wednesday 15:00 in Berlin
    assert content(reply) == (
        f"Scheduled `{program.short_id}`: `lru-cache` with <@{world.candidate}>, Wednesdays at "
        f"15:00 {BERLIN}, 3 times; the first is <t:{unix(first)}:F> (<t:{unix(first)}:R>). "
        "Reminders go out 5m, 1m before each."
    )
    assert program.interviewer_id == str(world.interviewer)
    assert program.time_limit_s == 1800 and program.timezone == BERLIN
    # the interviews will open under the channel the command was run in (as /interview start)
    assert program.platform_data == {
        "parent_channel": str(world.ids.channel_id),
        "candidate_name": "Bob",
    }
    assert [o.at for o in await occurrences(world, program)] == [
        first + timedelta(weeks=k) for k in range(3)
    ]

    def listing(text: str, moment: datetime, left: int) -> None:
        assert text.startswith("Scheduled programs:\n"), text
        assert f"• `{program.short_id}` <@{world.candidate}> · LRU Cache · " in text
        assert f"Wednesdays 15:00 {BERLIN}" in text
        assert f"next <t:{unix(moment)}:F> (<t:{unix(moment)}:R>) · {left} left" in text

    listing(content(await world.slash("schedules", world.interviewer)), first, 3)

    skipped = await world.slash("skip", world.interviewer, program=program.short_id.upper())
    assert content(skipped) == (
        f"Skipped the interview of <t:{unix(first)}:F> (<t:{unix(first)}:R>) "
        f"(program `{program.short_id}`); its reminders won't go out."
    )
    second = first + timedelta(weeks=1)
    listing(content(await world.slash("schedules", world.interviewer)), second, 2)
    # the skipped one's moment passes: no reminder, no interview
    await at(world, first - timedelta(minutes=5))
    await at(world, first)
    assert world.discord.dm_messages(world.candidate) == []
    assert world.discord.threads == {}

    cancelled = await world.slash("unschedule", world.interviewer, program=program.short_id)
    assert content(cancelled).startswith(f"Cancelled program `{program.short_id}` with <@")
    empty = await world.slash("schedules", world.interviewer)
    assert content(empty) == (
        "No interviews are scheduled. Add one with `/interview schedule candidate:@user`."
    )
    assert await programs(world) == []
    again = await world.slash("unschedule", world.interviewer, program=program.short_id)
    assert "There is no program" in content(again)
    # nothing of the cancelled program happens any more
    await at(world, second - timedelta(minutes=5))
    await at(world, second)
    assert world.discord.dm_messages(world.candidate) == []
    assert world.discord.dm_messages(world.interviewer) == []
    assert world.discord.threads == {}
    assert await world.open_interviews() == []


async def test_a_long_list_of_programs_comes_in_several_messages(world: DiscordWorld) -> None:
    for hour in range(8, 20):
        for day in ("tue", "thu"):
            await world.slash(
                "schedule", world.interviewer, candidate=world.candidate, day=day, time=f"{hour}:00"
            )
    ids = {p.short_id for p in await programs(world)}
    assert len(ids) == 24
    iid = await world.discord.send_slash_command(
        world.ids.guild_id, world.ids.channel_id, world.interviewer, subcommand="schedules"
    )

    def parts() -> list[str]:
        responses = world.discord.interaction_responses.get(iid, [])
        return [e["data"]["content"] for e in responses if e["kind"] == "followup"]

    await world.eventually(lambda: all(f"`{i}`" in "".join(parts()) for i in ids))
    assert len(parts()) >= 2 and all(len(part) <= 2000 for part in parts())
    assert parts()[0].startswith("Scheduled programs:\n")
    assert sum(part.count("\n• `") + part.startswith("• `") for part in parts()) == 24


async def test_program_ids_and_challenges_autocomplete_for_interviewers_only(
    world: DiscordWorld,
) -> None:
    await world.slash("schedule", world.interviewer, candidate=world.candidate, challenge="two-sum")
    (program,) = await programs(world)

    async def suggested(sub: str, user: int, option: str, typed: str) -> list[dict[str, Any]]:
        iid = await world.discord.send_autocomplete(
            world.ids.guild_id,
            world.ids.channel_id,
            user,
            "interview",
            sub,
            {option: typed} if sub != "schedule" else {"candidate": world.candidate, option: typed},
            option,
        )
        response = await world.discord.wait_interaction_response(iid, timeout=5)
        assert response["type"] == 8
        choices: list[dict[str, Any]] = response["data"]["choices"]
        return choices

    for sub in ("unschedule", "skip"):
        (choice,) = await suggested(sub, world.interviewer, "program", "")
        assert choice["value"] == program.short_id
        assert choice["name"].startswith(f"{program.short_id} · Bob · Two Sum · fri 15:00")
        assert await suggested(sub, world.interviewer, "program", "zzz") == []
        assert await suggested(sub, world.stranger, "program", "") == []
    assert await suggested("schedule", world.interviewer, "challenge", "cache") == [
        {"name": "LRU Cache (medium)", "value": "lru-cache"}
    ]


# ---- what happens by itself -----------------------------------------------------------------


async def test_reminders_reach_both_once_then_the_interview_opens_by_itself(
    world: DiscordWorld,
) -> None:
    await berlin(world)
    reply = await world.slash(
        "schedule",
        world.interviewer,
        candidate=world.candidate,
        day="mon",
        time="10:10",  # Berlin: 09:10 UTC, ten minutes from now
        weeks=1,
        minutes=30,
        tokens=8000,
        challenge="two-sum",
    )
    begins = START + timedelta(minutes=10)
    assert f"the first is <t:{unix(begins)}:F>" in content(reply), reply
    (program,) = await programs(world)
    shown = f"<t:{unix(begins)}:F> (<t:{unix(begins)}:R>)"

    def dms(user: int) -> list[str]:
        return [m["content"] for m in world.discord.dm_messages(user)]

    await at(world, begins - timedelta(minutes=5, seconds=1))
    assert dms(world.candidate) == dms(world.interviewer) == []  # not early

    await at(world, begins - timedelta(minutes=5), runs=2)  # run twice: sent once
    assert dms(world.candidate) == [
        f"⏰ Your interview starts in 5 minutes: {shown}. Challenge: Two Sum, 30 minutes. "
        "The private conversation will open by itself."
    ]
    assert dms(world.interviewer) == [
        f"⏰ The interview with <@{world.candidate}> starts in 5 minutes: {shown}. "
        "Challenge: Two Sum, 30 minutes. The private conversation will open by itself."
    ]

    await at(world, begins - timedelta(minutes=1), runs=2)
    for user in (world.candidate, world.interviewer):
        assert len(dms(user)) == 2 and "starts in 1 minute: " in dms(user)[1], dms(user)

    await at(world, begins - timedelta(seconds=1))
    assert world.discord.threads == {} and await world.open_interviews() == []

    await at(world, begins, runs=2)
    (interview,) = await world.open_interviews()
    assert interview.status is Status.ACTIVE and interview.started_at == begins
    assert (interview.time_limit_s, interview.token_budget) == (1800, 8000)
    assert interview.interviewer_id == str(world.interviewer)
    ((thread_id, thread),) = world.discord.threads.items()
    assert thread["type"] == 12 and thread["parent_id"] == str(world.ids.channel_id)
    assert set(world.discord.thread_members(thread_id)) >= {world.candidate, world.interviewer}
    opening, counter = world.thread_messages(interview)[:2]
    assert opening["content"].startswith(f"<@{world.candidate}>, your interview starts now.")
    assert "Two Sum" in opening["embeds"][0]["title"]
    assert "8,000" in str(counter["embeds"]) and counter["components"]
    (occurrence,) = await occurrences(world, program)
    assert occurrence.status is OccurrenceStatus.STARTED
    assert occurrence.interview_id == interview.id
    assert len(dms(world.candidate)) == 2
    assert dms(world.interviewer)[2:] == [
        f"▶️ The scheduled interview with <@{world.candidate}> (program `{program.short_id}`) "
        "has started in your private conversation with them."
    ]

    # it is an interview like any other: the candidate talks to the assistant in the thread
    world.openai.replies.append("Think of a hash map.")
    await world.discord.send_message(thread_id, world.candidate, "Where do I start?")
    await world.eventually(
        lambda: any(
            "Think of a hash map." in m["content"] and "-# " in m["content"]
            for m in world.thread_messages(interview)
        )
    )
    empty = await world.slash("schedules", world.interviewer)
    assert content(empty).startswith("No interviews are scheduled.")


async def test_a_candidate_who_takes_no_dms_is_skipped_once_and_the_rest_goes_on(
    world: DiscordWorld, caplog: pytest.LogCaptureFixture
) -> None:
    fake = world.discord
    closed = fake.add_member(
        world.ids.guild_id, fake.add_user("carol", accepts_dms=False), roles=[]
    )
    await world.slash("schedule", world.interviewer, candidate=closed, day="mon", time="9:10")
    (program,) = await programs(world)
    begins = START + timedelta(minutes=10)  # UTC, the default team zone
    with caplog.at_level(logging.WARNING):
        await at(world, begins - timedelta(minutes=5), runs=2)
    assert fake.dm_messages(closed) == []
    assert len(fake.dm_messages(world.interviewer)) == 1
    assert sum("accept no direct messages" in r.getMessage() for r in caplog.records) == 1
    assert not any("failed" in r.getMessage() for r in caplog.records)
    key = f"reminder:{program.id}:0:300:{closed}"
    async with world.service.ctx.uow() as uow:
        job = await uow.jobs.get(key)
    assert job is not None and job.done_at is not None and job.last_error is None


async def test_the_weekly_summary_goes_to_the_team_channel_once_a_week(
    world: DiscordWorld,
) -> None:
    await berlin(world)
    hiring = await text_channel(world, "hiring")
    team = await world.slash("config team_channel", world.interviewer, channel=hiring)
    assert content(team) == f"Team notes and weekly summaries will go to <#{hiring}>."
    when = await world.slash("config summary", world.interviewer, when="Mon 10:05")
    assert content(when) == "Weekly summaries: Mondays at 10:05 team time."
    workspace = await world.workspace()
    assert workspace.settings["team_channel"] == str(hiring)
    assert workspace.settings["summary"] == "mon 10:05"

    due = START + timedelta(minutes=5)  # 10:05 in Berlin

    def posts() -> list[str]:
        return [m["content"] for m in world.discord.channel_messages(hiring)]

    await at(world, due - timedelta(seconds=1))
    assert posts() == []
    await at(world, due, runs=2)
    (post,) = posts()
    assert post.startswith(f"📊 Interviews in the 7 days before <t:{unix(due)}:F>")
    assert "none were held" in post and "Nothing is scheduled for the next 7 days." in post

    private = await world.slash("summary", world.interviewer)
    assert content(private).startswith("📊 Interviews in the 7 days before <t:")
    assert private["data"]["flags"] & 64 and len(posts()) == 1

    await at(world, due + timedelta(weeks=1), runs=2)  # it armed next week's
    assert len(posts()) == 2 and f"<t:{unix(due + timedelta(weeks=1))}:F>" in posts()[1]

    off = await world.slash("config summary", world.interviewer, when="off")
    assert content(off) == "Weekly summaries are off here."
    await at(world, due + timedelta(weeks=2), runs=2)
    assert len(posts()) == 2


@pytest.mark.parametrize(
    ("variable", "announced"),
    [("discord_team_channel", False), ("discord_interviewer_channel", True)],
)
async def test_a_channel_named_in_the_environment_is_found_by_name(
    tmp_path: Path, variable: str, announced: bool
) -> None:
    async with discord_world(tmp_path, ManualClock(START), **{variable: "#Team-Room"}) as world:
        # announced: found in discord.py's cache; not (created after the bot connected, and
        # Discord never said so): found through the REST API
        room = await text_channel(world, "team-room", announce=announced)
        assert (world.adapter.client.get_channel(room) is not None) is announced
        assert world.discord.channels[room].type == GUILD_TEXT
        await world.slash("config summary", world.interviewer, when="mon 09:05")
        await at(world, START + timedelta(minutes=5), runs=2)
        (post,) = world.discord.channel_messages(room)
        assert post["content"].startswith("📊 Interviews in the 7 days before")
        listed = world.discord.calls_matching("GET", rf"/guilds/{world.ids.guild_id}/channels")
        assert bool(listed) is not announced


# ---- help -----------------------------------------------------------------------------------


async def test_help_names_the_discord_forms_of_every_command(world: DiscordWorld) -> None:
    assert DISCORD_USAGE.keys() == USAGE.keys()  # a new engine command needs its Discord form
    reply = await world.slash("help", world.stranger)
    text = content(reply)
    assert text == DISCORD_HELP
    for form in (
        "/interview schedule candidate:@user [day:mon..sun] [time:15:00] [weeks:1-52]",
        "/interview schedules",
        "/interview unschedule program:<id>",
        "/interview skip program:<id>",
        "/interview summary",
        "team_channel",
        "config summary when:fri 17:00 (or off)",
    ):
        assert form in text, form
    assert "@candidate" not in text and "#channel" not in text


async def test_the_weekly_summary_follows_a_change_of_the_team_time_zone(
    world: DiscordWorld,
) -> None:
    """``config timezone`` re-arms the summary (through the engine's config): 10:05 in Berlin
    is 09:05 UTC, an hour before 10:05 UTC, where it was armed first."""
    await world.slash("config team_channel", world.interviewer, channel=world.ids.channel_id)
    await world.slash("config summary", world.interviewer, when="mon 10:05")
    await berlin(world)
    await at(world, START + timedelta(minutes=5), runs=2)
    posts = [
        m for m in world.discord.channel_messages(world.ids.channel_id) if "📊" in m["content"]
    ]
    assert len(posts) == 1
