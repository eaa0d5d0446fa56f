"""The Discord adapter when Discord misbehaves: refused counter edits, a gateway that drops and
refuses reconnects, start-up failures, and start-up noise. The real discord.py client runs
against the fake Discord (bench/fakes/discord_server.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio
from aiohttp.abc import AbstractResolver, ResolveResult
from pydantic import SecretStr

from adapters.discord import views
from adapters.discord.runner import DiscordAdapter, DiscordConfig
from bench.fakes.discord_server import FakeDiscord, Perm
from bot.app import BotRuntime, discord_config
from bot.settings import load_settings
from core import texts
from core.errors import StartupError
from core.models import Interview, TurnStatus
from core.ports import RateLimiter
from core.service import InterviewService
from storage import create_uow_factory
from tests.conftest import Engine
from tests.test_discord import (
    QUIET_SCHEDULER,
    DiscordWorld,
    discord_world,
    manual_clock,
    open_interview,
    start_runtime,
)

BUTTONS = {views.EXTEND_TIME, views.EXTEND_TOKENS, views.PAUSE, views.END}


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[DiscordWorld]:
    async with discord_world(tmp_path) as built:
        yield built


@pytest.fixture(autouse=True)
def restore_route_base() -> Iterator[None]:
    """The adapter points discord.py's class-level REST base and gateway at the fake; put
    them back."""
    socket_cls = discord.gateway.DiscordWebSocket
    original = discord.http.Route.BASE, socket_cls.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE, socket_cls.DEFAULT_GATEWAY = original


# ---------------------------------------------------------------------- helpers


def _is_counter(body: Any) -> bool:
    return isinstance(body, dict) and "Tokens" in str(body.get("embeds"))


def counter_posts(world: DiscordWorld, thread_id: int) -> list[int]:
    """HTTP statuses of every counter the bot tried to post in the thread."""
    calls = world.discord.calls_matching("POST", rf"/channels/{thread_id}/messages")
    return [c.status for c in calls if c.status and _is_counter(c.json)]


def edits_of(world: DiscordWorld, thread_id: int, message_id: int) -> list[int]:
    """HTTP statuses of the answered edits of one message."""
    calls = world.discord.calls_matching("PATCH", rf"/channels/{thread_id}/messages/{message_id}")
    return [c.status for c in calls if c.status]


def deletes_of(world: DiscordWorld, thread_id: int, message_id: int) -> list[int]:
    calls = world.discord.calls_matching("DELETE", rf"/channels/{thread_id}/messages/{message_id}")
    return [c.status for c in calls if c.status]


def live_counters(world: DiscordWorld, thread_id: int) -> list[dict[str, Any]]:
    return [m for m in world.discord.channel_messages(thread_id) if "Tokens" in str(m["embeds"])]


def buttons(message: dict[str, Any]) -> set[str]:
    return {c["custom_id"] for row in message["components"] for c in row["components"]}


async def stored(world: DiscordWorld, interview: Interview) -> Interview:
    return await world.stored(interview)


async def open_and_settle(world: DiscordWorld) -> tuple[Interview, int, int]:
    """Start an interview; wait until the start's own counter edit was answered.

    These tests post and edit more than 5 times in 5 s in one thread; discord.py would then
    wait out the bucket (correctly, but slowly), so the fake allows more.
    """
    world.discord.set_rate_limit("POST /channels/{channel_id}/messages", 50, 5.0)
    world.discord.set_rate_limit("PATCH /channels/{channel_id}/messages/{message_id}", 50, 5.0)
    interview = await open_interview(world)
    thread_id = int(interview.platform_data["thread"])
    first = int(interview.platform_data["counter_message"])
    await world.discord.wait_for(lambda: edits_of(world, thread_id, first) == [200])
    return interview, thread_id, first


async def refresh_and_wait_for_edit(
    world: DiscordWorld, interview: Interview, thread_id: int, message_id: int
) -> None:
    """One engine refresh (a tick), then wait until Discord answered its edit of the counter."""
    before = len(edits_of(world, thread_id, message_id))
    await world.refresh(interview)
    await world.discord.wait_for(lambda: len(edits_of(world, thread_id, message_id)) > before)


# ---------------------------------------------------------------------- 1. counter re-posts


async def test_counter_refused_with_30046_early_is_reposted_once(world: DiscordWorld) -> None:
    interview, thread_id, first = await open_and_settle(world)
    # Discord refuses long before our 50 minutes (its clock runs ahead, or its limit changed).
    world.discord.refuse_edits(thread_id, first)

    await world.refresh(interview)
    await world.discord.wait_for(lambda: deletes_of(world, thread_id, first) == [204])
    assert edits_of(world, thread_id, first) == [200, 400]
    assert counter_posts(world, thread_id) == [200, 200]  # open_room's, then one re-post
    (counter,) = live_counters(world, thread_id)
    fresh = int(counter["id"])
    assert fresh != first and buttons(counter) == BUTTONS
    # The editor re-posted after show_counter returned: nothing was written out of band...
    assert (await stored(world, interview)).platform_data["counter_message"] == str(first)

    # ...the next refresh edits the new counter and the engine persists its id.
    await refresh_and_wait_for_edit(world, interview, thread_id, fresh)
    after = await stored(world, interview)
    assert after.platform_data["counter_message"] == str(fresh)
    await refresh_and_wait_for_edit(world, interview, thread_id, fresh)
    assert edits_of(world, thread_id, fresh) == [200, 200]

    assert await world.click(views.EXTEND_TIME, after, world.interviewer) == []
    assert (await stored(world, interview)).extra_time_s == 600
    await world.discord.wait_for(lambda: len(edits_of(world, thread_id, fresh)) == 3)
    assert edits_of(world, thread_id, fresh) == [200, 200, 200]
    assert counter_posts(world, thread_id) == [200, 200]  # no further re-posts
    assert world.discord.rate_limited == 0


async def test_deleted_counter_is_reposted_once_not_in_a_loop(world: DiscordWorld) -> None:
    interview, thread_id, first = await open_and_settle(world)
    await world.discord.delete_message(thread_id, first)  # e.g. a moderator

    await world.refresh(interview)
    await asyncio.wait_for(world.adapter.platform.idle(), 5)
    assert deletes_of(world, thread_id, first) == [404]  # already gone: ignored
    assert edits_of(world, thread_id, first) == [200, 404]  # 10008 Unknown Message
    (counter,) = live_counters(world, thread_id)
    fresh = int(counter["id"])
    assert buttons(counter) == BUTTONS
    for _ in range(3):
        await refresh_and_wait_for_edit(world, interview, thread_id, fresh)
    assert edits_of(world, thread_id, fresh) == [200, 200, 200]
    assert edits_of(world, thread_id, first) == [200, 404]
    assert counter_posts(world, thread_id) == [200, 200]
    assert (await stored(world, interview)).platform_data["counter_message"] == str(fresh)


async def test_failed_repost_gives_up_until_the_next_refresh(world: DiscordWorld) -> None:
    interview, thread_id, first = await open_and_settle(world)
    await world.discord.delete_message(thread_id, first)
    world.discord.set_permission_overwrite(
        world.ids.channel_id,
        world.discord.bot_user_id,
        deny=int(Perm.SEND_MESSAGES_IN_THREADS),
        member=True,
    )

    for _ in range(2):
        await world.refresh(interview)
        # The editor gives up (its task ends) instead of retrying in a loop.
        await asyncio.wait_for(world.adapter.platform.idle(), 5)
    assert edits_of(world, thread_id, first) == [200, 404, 404]  # one edit per refresh...
    assert counter_posts(world, thread_id) == [200, 403, 403]  # ...and one re-post per refusal
    assert live_counters(world, thread_id) == []

    world.discord.set_permission_overwrite(
        world.ids.channel_id, world.discord.bot_user_id, member=True
    )
    await world.refresh(interview)
    await world.discord.wait_for(lambda: len(live_counters(world, thread_id)) == 1)
    assert counter_posts(world, thread_id) == [200, 403, 403, 200]
    fresh = int(live_counters(world, thread_id)[0]["id"])
    await refresh_and_wait_for_edit(world, interview, thread_id, fresh)
    assert (await stored(world, interview)).platform_data["counter_message"] == str(fresh)


async def test_after_a_restart_a_stale_counter_id_reposts_once(world: DiscordWorld) -> None:
    interview, thread_id, first = await open_and_settle(world)
    world.discord.refuse_edits(thread_id, first)
    await world.refresh(interview)
    await world.discord.wait_for(lambda: deletes_of(world, thread_id, first) == [204])
    (reposted,) = live_counters(world, thread_id)
    # The new id lives only in memory until the next refresh; the bot restarts before that.
    assert (await stored(world, interview)).platform_data["counter_message"] == str(first)
    await world.runtime.stop()
    world.runtime, world.adapter = await start_runtime(world.settings, world.clock)
    posted = len(counter_posts(world, thread_id))

    await world.refresh(interview)
    await world.discord.wait_for(lambda: len(edits_of(world, thread_id, first)) == 3)
    assert edits_of(world, thread_id, first) == [200, 400, 404]  # the stored id: gone
    await world.discord.wait_for(lambda: len(counter_posts(world, thread_id)) == posted + 1)
    # The counter re-posted before the restart stays behind (its id was never stored); its
    # buttons work like any counter's.
    (fresh,) = [int(m["id"]) for m in live_counters(world, thread_id) if m["id"] != reposted["id"]]
    for _ in range(3):
        await refresh_and_wait_for_edit(world, interview, thread_id, fresh)
    assert edits_of(world, thread_id, fresh) == [200, 200, 200]
    assert len(counter_posts(world, thread_id)) == posted + 1  # exactly one re-post
    after = await stored(world, interview)
    assert after.platform_data["counter_message"] == str(fresh)
    assert await world.click(views.PAUSE, after, world.interviewer) == []
    assert (await stored(world, interview)).status.value == "paused"


async def test_ending_with_a_refused_counter_reposts_the_final_one(world: DiscordWorld) -> None:
    _, thread_id, first = await open_and_settle(world)
    world.discord.refuse_edits(thread_id, first)
    ended = await world.slash("end", world.interviewer, candidate=world.candidate)
    assert ended["data"]["content"].startswith("Ended"), ended
    await world.discord.wait_for(
        lambda: world.discord.threads[thread_id]["thread_metadata"]["locked"]
    )
    (final,) = live_counters(world, thread_id)
    assert int(final["id"]) != first and final["components"] == []  # no buttons any more
    assert "finished" in str(final["embeds"])
    assert edits_of(world, thread_id, first) == [200, 400]
    assert deletes_of(world, thread_id, first) == [204]
    assert world.discord.threads[thread_id]["thread_metadata"]["archived"]


# ---------------------------------------------------------------------- 2. live health


async def healthz(http: aiohttp.ClientSession, runtime: BotRuntime) -> tuple[int, dict[str, Any]]:
    async with http.get(f"http://127.0.0.1:{runtime.port}/healthz") as response:
        return response.status, await response.json()


async def healthz_becomes(http: aiohttp.ClientSession, runtime: BotRuntime, wanted: int) -> None:
    """Poll /healthz while the client reconnects (a real network event)."""
    deadline = time.monotonic() + 10
    while (await healthz(http, runtime))[0] != wanted:
        assert time.monotonic() < deadline, f"/healthz never answered {wanted}"
        await asyncio.sleep(0.05)


async def test_healthz_follows_the_live_gateway_connection(world: DiscordWorld) -> None:
    fake = world.discord
    async with aiohttp.ClientSession() as http:
        status, body = await healthz(http, world.runtime)
        assert status == 200 and body["checks"] == {"database": True, "discord": True}

        await fake.take_gateway_down()
        await fake.wait_for(lambda: fake.refused_gateway_connections >= 3, timeout=10)
        status, body = await healthz(http, world.runtime)
        assert status == 503 and body["checks"] == {"database": True, "discord": False}
        assert world.adapter.client.is_ready()  # what the check used to report

        await fake.bring_gateway_up()
        await healthz_becomes(http, world.runtime, 200)
    assert fake.resumes >= 1 and len(fake.identify_payloads) == 1  # resumed, not re-identified
    reply = await world.slash("status", world.interviewer)  # the gateway delivers again
    assert reply["data"]["flags"] & 64


async def test_healthz_needs_a_resumed_session_not_just_an_open_socket(
    world: DiscordWorld,
) -> None:
    fake = world.discord
    client = world.adapter.client
    async with aiohttp.ClientSession() as http:
        await fake.take_gateway_down("stall")  # accepts the socket, never answers the RESUME
        await fake.wait_for(lambda: fake.refused_gateway_connections >= 1)
        deadline = time.monotonic() + 5
        while any(shard.is_closed() for shard in client.shards.values()):
            assert time.monotonic() < deadline, "discord.py never opened the new socket"
            await asyncio.sleep(0.01)
        status, body = await healthz(http, world.runtime)
        assert status == 503 and body["checks"]["discord"] is False

        await fake.bring_gateway_up()
        await healthz_becomes(http, world.runtime, 200)
    assert fake.resumes >= 1


async def test_gateway_refused_at_start_up_is_not_ready_and_stop_ends_it(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        fake.seed()
        await fake.take_gateway_down("http")  # 503 on every websocket upgrade
        settings = load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/down.db",
            discord_bot_token="test-token",
            discord_api_base=fake.api_base,
            http_host="127.0.0.1",
            http_port=0,
            **QUIET_SCHEDULER,
        )
        adapters: list[DiscordAdapter] = []

        def factory(service: InterviewService, limiter: RateLimiter) -> DiscordAdapter:
            adapters.append(DiscordAdapter(discord_config(settings), service))
            return adapters[0]

        runtime = BotRuntime(settings, {"discord": factory}, clock=manual_clock())
        await runtime.start()  # REST log-in works; the gateway connects in the background
        try:
            await fake.wait_for(lambda: fake.refused_gateway_connections >= 1)
            async with aiohttp.ClientSession() as http:
                status, body = await healthz(http, runtime)
            assert status == 503 and body["checks"]["discord"] is False
        finally:
            # discord.py retries a shard that never connected every 5 s, even after close().
            await asyncio.wait_for(runtime.stop(), 10)
        connection = adapters[0]._connection
        assert connection is not None and connection.done()
        assert adapters[0].client.is_closed()


# ---------------------------------------------------------------------- 3. start-up failures


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def make_adapter(engine: Engine, api_base: str, token: str = "test-token", **options: Any) -> Any:
    config = DiscordConfig(bot_token=SecretStr(token), api_base=api_base)
    return DiscordAdapter(config, engine.service, client_options=options or None)


def assert_nothing_left(adapter: DiscordAdapter) -> None:
    assert adapter.client.is_closed()
    assert adapter.client.http.connector.closed  # the aiohttp session closed with it
    assert adapter._connection is None  # the gateway was never started


async def test_unreachable_api_is_one_line_naming_the_setting(engine: Engine) -> None:
    port = closed_port()
    base = f"http://127.0.0.1:{port}/api/v10"
    adapter = make_adapter(engine, base)
    with pytest.raises(StartupError) as caught:
        await adapter.start()
    message = str(caught.value)
    assert message.startswith(
        f"could not reach Discord at {base} (DISCORD_API_BASE): "
        f"Cannot connect to host 127.0.0.1:{port}"
    )
    assert "\n" not in message
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorError)
    assert_nothing_left(adapter)
    await adapter.stop()  # still safe afterwards


class NoSuchHost(AbstractResolver):
    """A resolver that answers like a DNS lookup of an unknown name (no network needed)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise OSError(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        pass


async def test_unknown_host_is_one_line_naming_the_setting(engine: Engine) -> None:
    base = "https://discord.invalid/api/v10"
    adapter = make_adapter(engine, base, connector=aiohttp.TCPConnector(resolver=NoSuchHost()))
    with pytest.raises(StartupError) as caught:
        await adapter.start()
    assert str(caught.value) == (
        "could not reach Discord at https://discord.invalid/api/v10 (DISCORD_API_BASE): "
        "Cannot connect to host discord.invalid:443 ssl:default [Name or service not known]"
    )
    assert isinstance(caught.value.__cause__, aiohttp.ClientConnectorDNSError)
    assert_nothing_left(adapter)


async def test_wrong_token_is_one_line_without_the_token(engine: Engine) -> None:
    async with FakeDiscord() as fake:
        adapter = make_adapter(engine, fake.api_base, token="wrong-token-0123456789")
        with pytest.raises(StartupError) as caught:
            await adapter.start()
        assert [c.status for c in fake.calls_matching("GET", "/users/@me")] == [401]
    assert str(caught.value) == (
        "Discord rejected DISCORD_BOT_TOKEN (401 Unauthorized): check the bot token"
    )
    assert isinstance(caught.value.__cause__, discord.LoginFailure)
    assert_nothing_left(adapter)


async def test_command_sync_refused_names_the_guild_setting(engine: Engine) -> None:
    async with FakeDiscord() as fake:
        config = DiscordConfig(
            bot_token=SecretStr("test-token"), api_base=fake.api_base, guild_ids=(1234,)
        )
        adapter = DiscordAdapter(config, engine.service)
        with pytest.raises(StartupError) as caught:
            await adapter.start()
    assert str(caught.value).startswith(
        "Discord refused the /interview commands for guild 1234 (DISCORD_GUILD_IDS): "
        "403 Forbidden (error code: 50001): Missing Access"
    )
    assert isinstance(caught.value.__cause__, discord.Forbidden)
    assert_nothing_left(adapter)


# ---------------------------------------------------------------------- 4. start-up noise


async def test_voice_warnings_are_silenced_and_other_warnings_are_not(
    engine: Engine, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # discord.py warns once per process (then clears these flags): make it warn again.
    monkeypatch.setattr(discord.VoiceClient, "warn_nacl", True)
    monkeypatch.setattr(discord.VoiceClient, "warn_dave", True)
    caplog.set_level(logging.WARNING)
    make_adapter(engine, "http://127.0.0.1:9/api/v10")
    assert not discord.VoiceClient.warn_nacl and not discord.VoiceClient.warn_dave  # it warned
    logging.getLogger("discord.client").warning("Attempting a reconnect in %.2fs", 1.5)
    logging.getLogger("discord.gateway").warning("Unknown OP code %s.", 42)
    assert [(r.name, r.getMessage()) for r in caplog.records if r.name.startswith("discord")] == [
        ("discord.client", "Attempting a reconnect in 1.50s"),
        ("discord.gateway", "Unknown OP code 42."),
    ]


# ---------------------------------------------------------------------- 5. shutdown


async def test_a_reply_streaming_when_the_bot_stops_is_recorded_as_interrupted(
    world: DiscordWorld,
) -> None:
    """discord.py never waits for its event tasks: the adapter ends the candidate's turn while
    the engine and the database are still open, so the turn records what it cost."""
    interview = await open_interview(world)
    thread_id = int(interview.platform_data["thread"])
    world.openai.chunk_delay = 0.05
    world.openai.replies.append(" ".join(f"word{i}" for i in range(400)))
    await world.discord.send_message(thread_id, world.candidate, "Explain everything.")
    await world.eventually(
        lambda: any("word3" in m["content"] for m in world.thread_messages(interview))
    )
    await world.runtime.stop()

    database = create_uow_factory(world.settings.database_url)
    try:
        async with database() as uow:
            (turn,) = await uow.interviews.list_turns(interview.id)
            after = await uow.interviews.get(interview.id)
    finally:
        await database.close()
    assert turn.status is TurnStatus.FAILED and turn.error == texts.INTERRUPTED
    assert "word3" in turn.reply and "word399" not in turn.reply
    assert turn.charged_tokens > turn.prompt_tokens  # the prompt and what arrived
    assert after is not None and after.tokens_used == turn.charged_tokens
    assert after.tokens_reserved == 0
