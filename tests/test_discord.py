"""The Discord adapter end to end: the real discord.py client against a fake Discord (REST +
gateway) and a fake OpenAI server, through the bot's real runtime."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import discord
import pytest_asyncio
import yarl

from adapters.discord import views
from adapters.discord.platform import COUNTER_MAX_AGE_S
from adapters.discord.runner import DiscordAdapter
from bench.fakes.discord_server import FakeDiscord, SeedIds
from bench.fakes.openai_server import FakeOpenAI
from bot.app import BotRuntime, discord_config
from bot.settings import Settings, load_settings
from core.clock import ManualClock
from core.models import EndReason, Interview, Status, Turn, Workspace
from core.ports import RateLimiter
from core.service import InterviewService


@dataclass
class DiscordWorld:
    discord: FakeDiscord
    openai: FakeOpenAI
    ids: SeedIds
    stranger: int
    settings: Settings
    clock: ManualClock
    runtime: BotRuntime
    adapter: DiscordAdapter

    @property
    def service(self) -> InterviewService:
        assert self.runtime.service is not None
        return self.runtime.service

    @property
    def interviewer(self) -> int:
        return self.ids.admin_id  # has the Admin role with Manage Server

    @property
    def candidate(self) -> int:
        return self.ids.member_id

    async def slash(self, sub: str, user: int, **options: Any) -> dict[str, Any]:
        """Run ``/interview <sub>``; return the bot's first follow-up (its answer)."""
        return await self.slash_with(sub, user, options)

    async def slash_with(
        self, sub: str, user: int, options: dict[str, Any] | list[dict[str, Any]]
    ) -> dict[str, Any]:
        """:meth:`slash` with named options, or a raw option list: values Discord's client
        would refuse (out of range, not a choice) reach the bot as they are."""
        group = None
        if sub.startswith("config "):
            group, sub = "config", sub.split()[1]
        iid = await self.discord.send_slash_command(
            self.ids.guild_id,
            self.ids.channel_id,
            user,
            subcommand=sub,
            group=group,
            options=options,
        )
        first = await self.discord.wait_interaction_response(iid, timeout=5)
        assert first["kind"] == "callback" and first["data"]["flags"] & 64  # ephemeral defer
        await self.discord.wait_for(
            lambda: any(e["kind"] == "followup" for e in self.discord.interaction_responses[iid]),
            timeout=10,
        )
        return next(e for e in self.discord.interaction_responses[iid] if e["kind"] == "followup")

    async def click(self, custom_id: str, interview: Interview, user: int) -> list[dict[str, Any]]:
        thread = int(interview.platform_data["thread"])
        iid = await self.discord.send_component_click(
            custom_id,
            int(interview.platform_data["counter_message"]),
            thread,
            user,
            self.ids.guild_id,
        )
        await self.discord.wait_interaction_response(iid, timeout=5)
        await self.settle()
        return [e for e in self.discord.interaction_responses[iid] if e["kind"] == "followup"]

    async def settle(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0.1)
            await self.service.settle()

    async def run_due(self) -> None:
        """Run the engine's due jobs now (the clock is manual: the scheduler's wake-ups run
        on real time), then settle."""
        await self.service.jobs.run_due()
        await self.settle()

    async def refresh(self, interview: Interview) -> None:
        """What the engine does on a tick or any change: warnings, counter, next tick."""
        await self.service.upkeep.refresh(await self.stored(interview))

    async def stored(self, interview: Interview) -> Interview:
        found = await self.service.queries.interview(interview.id)
        assert found is not None
        return found

    async def open_interviews(self) -> list[Interview]:
        return await self.service.queries.open_interviews()

    async def workspace(self) -> Workspace:
        return await self.service.queries.workspace("discord", str(self.ids.guild_id))

    async def turns(self, interview: Interview) -> list[Turn]:
        async with self.service.ctx.uow() as uow:
            return await uow.interviews.list_turns(interview.id)

    async def turns_settled(self, interview: Interview, count: int) -> None:
        """Wait until ``count`` turns are stored and none is still being answered."""
        deadline = time.monotonic() + 10
        while True:
            turns = await self.turns(interview)
            if len(turns) >= count and all(
                t.status.value not in ("pending", "streaming") for t in turns
            ):
                return
            assert time.monotonic() < deadline, "turns not settled"
            await asyncio.sleep(0.05)

    async def eventually(self, condition: Callable[[], bool], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not condition():
            assert time.monotonic() < deadline, "condition not reached"
            await asyncio.sleep(0.05)

    def thread_messages(self, interview: Interview) -> list[dict[str, Any]]:
        return self.discord.channel_messages(int(interview.platform_data["thread"]))


# The scheduler of the real runtime wakes the engine on real time. A manual clock that starts
# now keeps its wake-ups in the future (tests run due jobs themselves: DiscordWorld.run_due),
# and a long sweep interval keeps the periodic sweep out of the tests: a wake-up in flight
# when the runtime stops is cancelled mid-query (see the report on BotRuntime.stop).
QUIET_SCHEDULER = {"job_sweep_s": 300}


def manual_clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@contextmanager
def discord_py_isolated() -> Iterator[None]:
    """The adapter points discord.py's class-level REST base and gateway URL at
    DISCORD_API_BASE's Discord: put them back afterwards. Meanwhile the fallback gateway is a
    closed local port, so nothing reaches the fake (or Discord) but through the adapter."""
    socket_cls = discord.gateway.DiscordWebSocket
    saved = discord.http.Route.BASE, socket_cls.DEFAULT_GATEWAY
    socket_cls.DEFAULT_GATEWAY = yarl.URL(f"ws://127.0.0.1:{closed_port()}/")
    try:
        yield
    finally:
        discord.http.Route.BASE, socket_cls.DEFAULT_GATEWAY = saved


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def start_runtime(
    settings: Settings, clock: ManualClock, wall: Callable[[], float] = time.time
) -> tuple[BotRuntime, DiscordAdapter]:
    adapters: list[DiscordAdapter] = []

    def factory(service: InterviewService, limiter: RateLimiter) -> DiscordAdapter:
        adapter = DiscordAdapter(
            discord_config(settings),
            service,
            edit_interval_s=0.05,
            client_options={"guild_ready_timeout": 0.05},
        )
        adapter.platform.wall_clock = wall
        adapters.append(adapter)
        return adapter

    runtime = BotRuntime(settings, {"discord": factory}, clock=clock)
    await runtime.start()
    await asyncio.wait_for(adapters[0].wait_ready(), 10)
    return runtime, adapters[0]


@asynccontextmanager
async def discord_world(
    tmp_path: Path, clock: ManualClock | None = None, **overrides: Any
) -> AsyncIterator[DiscordWorld]:
    """A fake Discord and a fake OpenAI, and the bot's runtime connected to them (on
    ``clock``, with ``overrides`` of the test settings)."""
    async with FakeDiscord() as fake, FakeOpenAI(tokens_per_chunk=3) as openai:
        ids = fake.seed()
        stranger = fake.add_member(ids.guild_id, username="sam")
        options: dict[str, Any] = {
            "database_url": f"sqlite+aiosqlite:///{tmp_path}/discord.db",
            "discord_bot_token": "test-token",
            "discord_api_base": fake.api_base,
            "discord_guild_ids": str(ids.guild_id),
            "openai_api_key": "sk-test",
            "openai_base_url": openai.base_url,
            "llm_max_retries": 0,
            "http_host": "127.0.0.1",
            "http_port": 0,
            **QUIET_SCHEDULER,
        }
        settings = load_settings(**{**options, **overrides})
        clock = clock or manual_clock()
        with discord_py_isolated():
            runtime, adapter = await start_runtime(settings, clock)
            world = DiscordWorld(fake, openai, ids, stranger, settings, clock, runtime, adapter)
            try:
                yield world
            finally:
                await world.runtime.stop()  # the current one: a test may have restarted it


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[DiscordWorld]:
    async with discord_world(tmp_path) as built:
        yield built


async def open_interview(world: DiscordWorld, **options: Any) -> Interview:
    reply = await world.slash(
        "start", world.interviewer, candidate=world.candidate, challenge="two-sum", **options
    )
    assert reply["data"]["content"].startswith("Started `two-sum`"), reply
    workspace = await world.workspace()
    (interview,) = await world.service.queries.open_interviews(workspace.id)
    return interview


async def test_whole_flow_start_chat_extend_exhaust_lock(world: DiscordWorld) -> None:
    sync = world.discord.calls_matching(
        "PUT", rf"/applications/\d+/guilds/{world.ids.guild_id}/commands"
    )
    assert sync, "commands are synced to the configured guild"
    assert world.discord.identify_payloads[0]["intents"] & (1 << 15)  # message content

    interview = await open_interview(world, minutes=90, tokens=4000)
    thread_id = int(interview.platform_data["thread"])
    thread = world.discord.threads[thread_id]
    assert thread["type"] == 12 and thread["thread_metadata"]["invitable"] is False
    assert thread["parent_id"] == str(world.ids.channel_id)
    assert set(world.discord.thread_members(thread_id)) >= {world.candidate, world.interviewer}
    first, counter = world.thread_messages(interview)[:2]
    assert "Two Sum" in first["embeds"][0]["title"]
    assert "<t:" in str(counter["embeds"][0]) and counter["components"]
    custom_ids = {c["custom_id"] for row in counter["components"] for c in row["components"]}
    assert custom_ids == {views.EXTEND_TIME, views.EXTEND_TOKENS, views.PAUSE, views.END}

    world.openai.chunk_delay = 0.02
    world.openai.replies.append("Use a dict.\n```python\nseen = {}\n```\nThen one pass.")
    await world.discord.send_message(thread_id, world.candidate, "How do I start?")
    await world.eventually(
        lambda: any(
            "-# " in m["content"] and "Then one pass." in m["content"]
            for m in world.thread_messages(interview)
        )
    )
    reply = next(m for m in world.thread_messages(interview) if "Then one pass." in m["content"])
    assert reply["edit_count"] >= 1  # it filled in by edits
    assert "tokens this turn" in reply["content"]
    stored = await world.stored(interview)
    assert stored.tokens_used > 0
    await world.eventually(
        lambda: (
            f"{stored.tokens_used:,} / 4,000" in str(world.thread_messages(interview)[1]["embeds"])
        )
    )

    assert await world.click(views.EXTEND_TIME, interview, world.interviewer) == []
    stored = await world.stored(interview)
    assert stored.extra_time_s == 600

    world.openai.chunk_delay = 0.0
    for i in range(25):
        await world.discord.send_message(thread_id, world.candidate, f"Tell me more, part {i}")
        await world.turns_settled(interview, i + 2)
        await world.settle()
        stored = await world.stored(interview)
        assert stored.tokens_used <= 4000
        if stored.status is Status.ENDED:
            break
    assert stored.end_reason is EndReason.TOKENS_EXHAUSTED
    await world.eventually(lambda: world.discord.threads[thread_id]["thread_metadata"]["locked"])
    assert world.discord.threads[thread_id]["thread_metadata"]["archived"]
    messages = world.thread_messages(interview)
    assert any("The token budget is used up" in m["content"] for m in messages)
    assert messages[1]["components"] == []  # final counter without buttons
    assert world.discord.rate_limited == 0


async def test_replayed_message_is_answered_once(world: DiscordWorld) -> None:
    interview = await open_interview(world)
    thread_id = int(interview.platform_data["thread"])
    message_id = await world.discord.send_message(thread_id, world.candidate, "What is O(n)?")
    await world.discord.send_message(
        thread_id, world.candidate, "What is O(n)?", message_id=message_id
    )
    await world.eventually(
        lambda: any("-# " in m["content"] for m in world.thread_messages(interview))
    )
    await world.settle()
    turns = await world.turns(interview)
    assert len(turns) == 1 and len(world.openai.requests) == 1
    assert sum("-# " in m["content"] for m in world.thread_messages(interview)) == 1


async def test_errors_and_refusals_are_ephemeral_and_change_nothing(world: DiscordWorld) -> None:
    refused = await world.slash("start", world.stranger, candidate=world.candidate)
    assert refused["data"]["content"].startswith("❌ Only interviewers")
    assert refused["data"].get("flags", 0) & 64
    unknown = await world.slash(
        "start", world.interviewer, candidate=world.candidate, challenge="nope"
    )
    assert "There is no challenge `nope`" in unknown["data"]["content"]
    tiny = await world.slash("start", world.interviewer, candidate=world.candidate, tokens=10)
    assert "too small" in tiny["data"]["content"]
    nothing = await world.slash("extend", world.interviewer, candidate=world.candidate)
    assert "has no active interview" in nothing["data"]["content"]
    assert await world.open_interviews() == []
    assert world.discord.threads == {}

    interview = await open_interview(world)
    again = await world.slash("start", world.interviewer, candidate=world.candidate)
    assert "already has an active interview" in again["data"]["content"]
    no_amount = await world.slash("extend", world.interviewer, candidate=world.candidate)
    assert "Say how much to add" in no_amount["data"]["content"]
    # Only the candidate and the interviewer can see the private thread and its buttons.
    for button in (views.EXTEND_TIME, views.EXTEND_TOKENS, views.PAUSE, views.END):
        (refusal,) = await world.click(button, interview, world.candidate)
        assert refusal["data"]["content"].startswith("❌") and refusal["data"]["flags"] & 64
    stored = await world.stored(interview)
    assert stored.status is Status.ACTIVE and stored.extra_time_s == 0
    assert len(await world.open_interviews()) == 1


async def test_commands_pause_resume_status_config(world: DiscordWorld) -> None:
    interview = await open_interview(world)
    paused = await world.slash("pause", world.interviewer, candidate=world.candidate)
    assert paused["data"]["content"] == f"Paused <@{world.candidate}>'s interview."
    await world.eventually(
        lambda: views.RESUME in str(world.thread_messages(interview)[1]["components"])
    )
    status = await world.slash("status", world.interviewer)
    assert "paused" in status["data"]["content"]
    assert (await world.click(views.RESUME, interview, world.interviewer)) == []
    extended = await world.slash(
        "extend", world.interviewer, candidate=world.candidate, tokens=5000
    )
    assert extended["data"]["content"].startswith("Extended")
    role = await world.slash("config role", world.interviewer, role=world.ids.admin_role_id)
    assert "Interviewers" in role["data"]["content"]
    channel = await world.slash(
        "config interview_channel", world.interviewer, channel=world.ids.channel_id
    )
    assert "Interview threads will open under" in channel["data"]["content"]
    tz = await world.slash("config timezone", world.interviewer, timezone="Europe/Berlin")
    assert "Europe/Berlin" in tz["data"]["content"]
    workspace = await world.workspace()
    assert workspace.settings["timezone"] == "Europe/Berlin"
    listed = await world.slash("challenges", world.stranger)
    assert "`two-sum`" in listed["data"]["content"]
    ended = await world.slash("end", world.interviewer, candidate=world.candidate)
    assert ended["data"]["content"].startswith("Ended")


async def test_buttons_keep_working_after_a_restart(world: DiscordWorld) -> None:
    interview = await open_interview(world)
    await world.runtime.stop()
    world.runtime, world.adapter = await start_runtime(world.settings, world.clock)
    assert await world.click(views.PAUSE, interview, world.interviewer) == []
    stored = await world.stored(interview)
    assert stored.status is Status.PAUSED


async def test_counter_keeps_working_through_a_three_hour_session(world: DiscordWorld) -> None:
    offset = [0.0]
    await world.runtime.stop()
    world.runtime, world.adapter = await start_runtime(
        world.settings, world.clock, wall=lambda: time.time() + offset[0]
    )
    interview = await open_interview(world, minutes=210)
    thread_id = int(interview.platform_data["thread"])
    counters_seen = {interview.platform_data["counter_message"]}
    for _ in range(4):  # 4 x 50 minutes of wall time
        offset[0] += COUNTER_MAX_AGE_S + 60
        world.discord.advance_clock(COUNTER_MAX_AGE_S + 60)
        world.clock.advance(COUNTER_MAX_AGE_S + 60)
        await world.run_due()  # nothing is due: no tick redraws a Discord counter on a timer
        await world.slash("extend", world.interviewer, candidate=world.candidate, minutes=1)
        await world.settle()
        stored = await world.stored(interview)
        counters_seen.add(stored.platform_data["counter_message"])
        live = [
            m
            for m in world.discord.channel_messages(thread_id)
            if m["embeds"] and "Tokens" in str(m["embeds"])
        ]
        assert [str(m["id"]) for m in live] == [stored.platform_data["counter_message"]]
    assert len(counters_seen) == 5  # re-posted every time it would have aged out
    # the deadline passes 51 minutes after the last re-post: the final counter is re-posted too
    offset[0] += COUNTER_MAX_AGE_S + 60
    world.discord.advance_clock(COUNTER_MAX_AGE_S + 60)
    world.clock.advance(COUNTER_MAX_AGE_S + 60)
    await world.run_due()  # the deadline's tick
    stored = await world.stored(interview)
    assert stored.end_reason is EndReason.TIME_UP
    final = [m for m in world.discord.channel_messages(thread_id) if "Tokens" in str(m["embeds"])]
    assert (
        len(final) == 1 and "finished" in str(final[0]["embeds"]) and final[0]["components"] == []
    )
    assert world.discord.threads[thread_id]["thread_metadata"]["locked"]
    edits = world.discord.calls_matching("PATCH", rf"/channels/{thread_id}/messages/\d+")
    assert edits and all(call.status < 400 for call in edits)


async def test_challenge_option_autocompletes(world: DiscordWorld) -> None:
    iid = await world.discord.send_autocomplete(
        world.ids.guild_id,
        world.ids.channel_id,
        world.interviewer,
        "interview",
        "start",
        {"candidate": world.candidate, "challenge": "cache"},
        "challenge",
    )
    response = await world.discord.wait_interaction_response(iid, timeout=5)
    assert response["type"] == 8  # APPLICATION_COMMAND_AUTOCOMPLETE_RESULT
    assert response["data"]["choices"] == [{"name": "LRU Cache (medium)", "value": "lru-cache"}]


async def test_interviewer_role_from_the_environment_by_name(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, FakeOpenAI() as openai:
        ids = fake.seed()
        role = fake.add_role(ids.guild_id, "Hiring Team")
        recruiter = fake.add_member(ids.guild_id, username="rita", roles=[role])
        settings = load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/role.db",
            discord_bot_token="test-token",
            discord_api_base=fake.api_base,
            discord_guild_ids=str(ids.guild_id),
            discord_interviewer_role="Hiring Team",
            discord_interview_channel="interviews",
            openai_base_url=openai.base_url,
            openai_api_key="sk-test",
            **QUIET_SCHEDULER,
        )
        clock = manual_clock()
        with discord_py_isolated():
            runtime, adapter = await start_runtime(settings, clock)
            world = DiscordWorld(fake, openai, ids, 0, settings, clock, runtime, adapter)
            try:
                reply = await world.slash("start", recruiter, candidate=ids.member_id)
                assert reply["data"]["content"].startswith("Started"), reply
                (interview,) = await world.open_interviews()
                assert interview.interviewer_id == str(recruiter)
                assert interview.platform_data["parent_channel"] == str(ids.channel_id)
            finally:
                await runtime.stop()


async def test_long_replies_continue_in_further_messages_with_code_intact(
    world: DiscordWorld,
) -> None:
    interview = await open_interview(world, tokens=50_000)
    code = "".join(f"    total += values[{i}] * weights[{i}]\n" for i in range(150))
    world.openai.replies.append(
        f"Here you go:\n```python\ndef score(values, weights):\n{code}```\nDone."
    )
    await world.discord.send_message(
        int(interview.platform_data["thread"]), world.candidate, "code?"
    )
    await world.eventually(
        lambda: any(
            "Done." in m["content"] and "-# " in m["content"]
            for m in world.thread_messages(interview)
        )
    )
    parts = [m["content"] for m in world.thread_messages(interview) if "weights[" in m["content"]]
    assert len(parts) >= 3
    for part in parts:
        assert len(part) <= 2000 and part.count("```") % 2 == 0
    assert all(p.startswith("```python\n") for p in parts[1:])
