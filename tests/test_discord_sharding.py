"""Several bot processes against one Discord: two bot runtimes in this test process, each with
its own discord.py client, engine and database engine, sharing one SQL database (SQLite, and
PostgreSQL when TEST_DATABASE_URL is set) and one fake Discord (REST + gateway). The fake
delivers each event to every gateway session of the guild's shard, like Discord.

* Rolling restart: both processes own shard 0 for a while, so both get every event. A
  candidate's message is stored once (by its message id): one reply, one charge. An
  interaction is taken by whichever process acknowledges it first; the other gets 40060 and
  stays silent. A counter one process re-posted is the one the other edits.
* Sharding: with ``DISCORD_SHARD_COUNT=2`` and ``DISCORD_SHARD_IDS=0`` / ``1`` each process
  connects only its shard, receives only its guilds' events and reports health for its shards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from adapters.discord import views
from adapters.discord.runner import DiscordAdapter
from bench.fakes.discord_server import FakeDiscord, SeedIds
from bench.fakes.openai_server import FakeOpenAI
from bot.app import BotRuntime
from bot.settings import Settings, load_settings
from core.clock import ManualClock
from core.models import AuditEvent, Interview
from storage import normalize_url
from tests.test_discord import (
    QUIET_SCHEDULER,
    DiscordWorld,
    discord_py_isolated,
    manual_clock,
    open_interview,
    start_runtime,
)
from tests.test_discord_resilience import counter_posts, deletes_of, edits_of, live_counters

PG_URL = os.environ.get("TEST_DATABASE_URL")


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of one database every process of a test uses: an SQLite file always, a fresh
    PostgreSQL database when TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/shared.db"
        return
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set; skipping the PostgreSQL backend")
    server = make_url(normalize_url(PG_URL))
    name = f"ib_discord_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield server.set(database=name).render_as_string(hide_password=False)
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


def settings_for(
    database_url: str, fake: FakeDiscord, openai: FakeOpenAI, guilds: list[int], **extra: Any
) -> Settings:
    return load_settings(
        database_url=database_url,  # one database for all processes
        discord_bot_token="test-token",
        discord_api_base=fake.api_base,
        discord_guild_ids=",".join(str(g) for g in guilds),
        openai_api_key="sk-test",
        openai_base_url=openai.base_url,
        llm_max_retries=0,
        http_host="127.0.0.1",
        http_port=0,
        **QUIET_SCHEDULER,
        **extra,
    )


def record_messages(adapter: DiscordAdapter) -> list[int]:
    """Ids of the MESSAGE_CREATEs this process's client passed to the adapter."""
    seen: list[int] = []
    handle = adapter.on_message

    async def on_message(message: discord.Message) -> None:
        seen.append(message.id)
        await handle(message)

    adapter.on_message = on_message  # type: ignore[method-assign]
    return seen


def handlers_running() -> list[asyncio.Task[Any]]:
    """discord.py's tasks for interactions still at work (in any client of this loop)."""
    return [
        t
        for t in asyncio.all_tasks()
        if not t.done()
        and (t.get_name() == "CommandTree-invoker" or t.get_name().startswith("discord-ui-view"))
    ]


def callbacks(fake: FakeDiscord, iid: int) -> list[int]:
    """HTTP statuses of every attempt to acknowledge an interaction."""
    calls = fake.calls_matching("POST", rf"/interactions/{iid}/[^/]+/callback")
    return [c.status for c in calls if c.status]


async def both_tried(world: DiscordWorld, iid: int) -> None:
    """Wait until both processes tried to acknowledge ``iid`` and are done with it."""
    await world.discord.wait_for(lambda: len(callbacks(world.discord, iid)) == 2)
    await world.eventually(lambda: not handlers_running())


async def process(
    fake: FakeDiscord,
    openai: FakeOpenAI,
    ids: SeedIds,
    settings: Settings,
    clock: ManualClock,
    stack: AsyncExitStack,
) -> DiscordWorld:
    """One bot process (a BotRuntime with its Discord adapter), stopped when ``stack`` ends."""
    runtime, adapter = await start_runtime(settings, clock)
    stack.push_async_callback(stop, runtime)
    return DiscordWorld(fake, openai, ids, 0, settings, clock, runtime, adapter)


_stopped: weakref.WeakSet[BotRuntime] = weakref.WeakSet()


async def stop(runtime: BotRuntime) -> None:
    """Stop a runtime once (a test may stop one early)."""
    if runtime not in _stopped:
        _stopped.add(runtime)
        await runtime.stop()


@asynccontextmanager
async def fakes(**options: Any) -> AsyncIterator[tuple[FakeDiscord, FakeOpenAI]]:
    async with FakeDiscord(**options) as fake, FakeOpenAI(tokens_per_chunk=3) as openai:
        with discord_py_isolated():
            yield fake, openai


async def healthz(runtime: BotRuntime) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{runtime.port}/healthz") as response,
    ):
        return response.status


async def audit(world: DiscordWorld, interview: Interview) -> list[AuditEvent]:
    async with world.service.ctx.uow() as uow:
        return await uow.interviews.list_audit(interview.id)


def followups(fake: FakeDiscord, iid: int) -> list[dict[str, Any]]:
    return [e for e in fake.interaction_responses.get(iid, []) if e["kind"] == "followup"]


async def test_an_event_both_processes_see_is_answered_and_charged_once(shared_db: str) -> None:
    async with fakes() as (fake, openai), AsyncExitStack() as stack:
        ids = fake.seed()
        settings = settings_for(shared_db, fake, openai, [ids.guild_id])
        clock = manual_clock()
        old = await process(fake, openai, ids, settings, clock, stack)
        new = await process(fake, openai, ids, settings, clock, stack)  # the overlap
        assert [p["shard"] for p in fake.identify_payloads] == [[0, 1], [0, 1]]
        seen = {"old": record_messages(old.adapter), "new": record_messages(new.adapter)}

        # The slash command reaches both; one acknowledges it, the other stays silent.
        interview = await open_interview(old)
        (iid,) = fake.interaction_responses
        await both_tried(old, iid)
        assert sorted(callbacks(fake, iid)) == [200, 400]  # the second: 40060
        assert [e["kind"] for e in fake.interaction_responses[iid]] == ["callback", "followup"]
        assert len(fake.threads) == 1 and len(await old.open_interviews()) == 1
        thread_id = int(interview.platform_data["thread"])

        openai.replies.append("Sort first, then two pointers.")
        message_id = await fake.send_message(thread_id, ids.member_id, "Any hint?")
        dispatched = [d for t, d in fake.dispatched if t == "MESSAGE_CREATE"]
        assert [d["id"] for d in dispatched].count(str(message_id)) == 1  # one event...
        await old.eventually(lambda: all(message_id in s for s in seen.values()))  # ...for two
        await old.turns_settled(interview, 1)
        await old.eventually(
            lambda: any("-# " in m["content"] for m in old.thread_messages(interview))
        )
        await old.settle()
        await new.settle()

        (turn,) = await old.turns(interview)
        assert turn.platform_message_id == str(message_id) and turn.charged_tokens > 0
        assert len(openai.requests) == 1
        replies = [m for m in old.thread_messages(interview) if "two pointers" in m["content"]]
        assert len(replies) == 1 and "-# " in replies[0]["content"]
        stored = await new.stored(interview)  # what the other process reads: the same charge
        assert stored.tokens_used == turn.charged_tokens

        # A counter button both processes receive: extended once, nobody told anything.
        await old.click(views.EXTEND_TIME, interview, old.interviewer)
        (click,) = [i for i in fake.interaction_responses if i != iid]
        await both_tried(old, click)
        await old.settle()
        await new.settle()
        assert sorted(callbacks(fake, click)) == [200, 400]
        assert [e["kind"] for e in fake.interaction_responses[click]] == ["callback"]
        assert (await new.stored(interview)).extra_time_s == 600
        assert [e.kind for e in await audit(old, interview)].count("extended") == 1


async def test_each_process_owns_its_shards_guilds_and_health(shared_db: str) -> None:
    async with fakes(shard_count=2) as (fake, openai), AsyncExitStack() as stack:
        first, second = fake.seed(shard=0), fake.seed(shard=1)
        guilds = [first.guild_id, second.guild_id]
        clock = manual_clock()
        worlds = [
            await process(
                fake,
                openai,
                ids,
                settings_for(
                    shared_db, fake, openai, guilds, discord_shard_count=2, discord_shard_ids=str(n)
                ),
                clock,
                stack,
            )
            for n, ids in enumerate((first, second))
        ]
        assert sorted(p["shard"] for p in fake.identify_payloads) == [[0, 2], [1, 2]]
        seen = [record_messages(w.adapter) for w in worlds]
        for n, world in enumerate(worlds):
            client = world.adapter.client
            assert set(client.shards) == {n}
            assert client.get_guild(guilds[n]) is not None
            assert client.get_guild(guilds[1 - n]) is None
            assert await healthz(world.runtime) == 200

        interviews = [await open_interview(w) for w in worlds]
        for n, (world, interview) in enumerate(zip(worlds, interviews, strict=True)):
            thread_id = int(interview.platform_data["thread"])
            openai.replies.append(f"Hint for guild {n}.")
            message_id = await fake.send_message(thread_id, world.candidate, "Any hint?")
            await world.turns_settled(interview, 1)
            await world.eventually(
                lambda w=world, i=interview: any(
                    "-# " in m["content"] for m in w.thread_messages(i)
                )
            )
            assert message_id in seen[n] and message_id not in seen[1 - n]
        assert len(openai.requests) == 2

        # Health covers the shards a process owns: shard 1 going away leaves shard 0's fine.
        await stop(worlds[1].runtime)
        assert await healthz(worlds[0].runtime) == 200
        assert await worlds[0].adapter.is_ready()


async def test_a_counter_another_process_reposted_is_the_one_edited(shared_db: str) -> None:
    """Each process remembers the counter message it last used; the newer post wins, so a
    process never goes back to a counter another process replaced."""
    async with (
        fakes(interactions_to_every_session=False) as (fake, openai),
        AsyncExitStack() as stack,
    ):
        ids = fake.seed()
        settings = settings_for(shared_db, fake, openai, [ids.guild_id])
        clock = manual_clock()
        old = await process(fake, openai, ids, settings, clock, stack)
        new = await process(fake, openai, ids, settings, clock, stack)
        fake.set_rate_limit("POST /channels/{channel_id}/messages", 50, 5.0)
        fake.set_rate_limit("PATCH /channels/{channel_id}/messages/{message_id}", 50, 5.0)
        interview = await open_interview(old)  # the first session gets the command: old's
        thread = int(interview.platform_data["thread"])
        first = int(interview.platform_data["counter_message"])
        await fake.wait_for(lambda: edits_of(old, thread, first) == [200])

        await new.refresh(interview)  # the other process draws the same counter once
        await fake.wait_for(lambda: edits_of(old, thread, first) == [200, 200])
        fake.refuse_edits(thread, first)
        await old.refresh(interview)  # refused: old re-posts it...
        await fake.wait_for(lambda: deletes_of(old, thread, first) == [204])
        (counter,) = live_counters(old, thread)
        fresh = int(counter["id"])
        await old.refresh(interview)  # ...and stores the new id with its next refresh
        await fake.wait_for(lambda: edits_of(old, thread, fresh) == [200])
        assert (await new.stored(interview)).platform_data["counter_message"] == str(fresh)

        await new.refresh(interview)
        await fake.wait_for(lambda: edits_of(old, thread, fresh) == [200, 200])
        await asyncio.wait_for(new.adapter.platform.idle(), 5)
        assert edits_of(old, thread, first) == [200, 200, 400]  # not tried again
        assert counter_posts(old, thread) == [200, 200]  # no third counter
        assert [int(m["id"]) for m in live_counters(old, thread)] == [fresh]
