"""A real discord.py 2.7 ``AutoShardedClient`` against :class:`FakeDiscord` (REST + gateway)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio
from discord import app_commands

from bench.fakes.discord_server import FakeDiscord, Perm, SeedIds, discord_py_pointed_at

MESSAGES_ROUTE = "POST /channels/{channel_id}/messages"


class Bot(discord.AutoShardedClient):
    """Default intents + message content, a command tree, and event logs."""

    def __init__(self) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.ready = asyncio.Event()
        self.resumed = asyncio.Event()
        self.messages: list[discord.Message] = []

    async def on_ready(self) -> None:
        self.ready.set()

    async def on_resumed(self) -> None:
        self.resumed.set()

    async def on_message(self, message: discord.Message) -> None:
        self.messages.append(message)


async def _eventually(predicate: Any, within: float = 3.0) -> None:
    """Poll ``predicate`` (state outside the fake, e.g. the bot's) until true."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running(fake: FakeDiscord) -> AsyncIterator[Bot]:
    """Start a Bot against the fake; on exit close it and check nothing is left running."""
    before = asyncio.all_tasks()
    with discord_py_pointed_at(fake):
        bot = Bot()
        task = asyncio.create_task(bot.start("test-token"))
        ready = asyncio.create_task(bot.ready.wait())
        try:
            await asyncio.wait({task, ready}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
            assert bot.ready.is_set(), "on_ready never fired"
            yield bot
        finally:
            ready.cancel()
            await bot.close()
            await asyncio.wait_for(task, 5)
    assert discord.http.Route.BASE == "https://discord.com/api/v10"
    current = asyncio.current_task()

    def leftovers() -> list[asyncio.Task[Any]]:
        return [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]

    def heartbeat_threads() -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t.name.startswith("keep-alive-handler") and t.is_alive()
        ]

    await _eventually(lambda: not leftovers() and not heartbeat_threads(), within=2.0)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
def ids(fake: FakeDiscord) -> SeedIds:
    return fake.seed()


@pytest_asyncio.fixture
async def bot(fake: FakeDiscord, ids: SeedIds) -> AsyncIterator[Bot]:
    async with running(fake) as client:
        yield client


async def test_raw_http_behaves_like_discord(fake: FakeDiscord, ids: SeedIds) -> None:
    auth = {"Authorization": "Bot test-token"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake.api_base}/users/@me", headers=auth) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            assert resp.headers["X-RateLimit-Bucket"]
            assert (await resp.json())["id"] == str(fake.bot_user_id)
        async with http.get(f"{fake.api_base}/users/@me", headers={"Authorization": "Bot x"}) as r:
            assert r.status == 401
            assert await r.json() == {"message": "401: Unauthorized", "code": 0}
        async with http.get(f"{fake.api_base}/nope", headers=auth) as resp:
            assert resp.status == 404
            assert await resp.json() == {"message": "404: Not Found", "code": 0}
        fake.set_rate_limit(MESSAGES_ROUTE, 5, 0.5)
        fake.exhaust_bucket(MESSAGES_ROUTE, channel_id=ids.channel_id)
        url = f"{fake.api_base}/channels/{ids.channel_id}/messages"
        async with http.post(url, json={"content": "hi"}, headers=auth) as resp:
            assert resp.status == 429
            assert resp.headers["X-RateLimit-Scope"] == "user"
            assert resp.headers["X-RateLimit-Remaining"] == "0"
            assert resp.headers["Retry-After"] == "1"
            body = await resp.json()
            assert body["message"] == "You are being rate limited."
            assert 0 < body["retry_after"] <= 0.5
            assert body["global"] is False
    assert fake.rate_limited == 1
    assert [c.status for c in fake.calls_matching("POST", r"/channels/\d+/messages")] == [429]


async def test_login_handshake_fills_the_cache(fake: FakeDiscord, ids: SeedIds, bot: Bot) -> None:
    guild = bot.get_guild(ids.guild_id)
    assert guild is not None and guild.name == "Interview Buddy Test"
    channel = guild.get_channel(ids.channel_id)
    assert isinstance(channel, discord.TextChannel) and channel.name == "interviews"
    assert guild.me is not None and guild.me.id == fake.bot_user_id
    assert {r.name for r in guild.roles} >= {"@everyone", "Admin"}
    assert bot.application_id == fake.application_id
    assert bot.user is not None and bot.user.id == fake.bot_user_id

    [identify] = fake.identify_payloads
    assert identify["token"] == "test-token"
    assert identify["intents"] == bot.intents.value
    assert identify["shard"] == [0, 1]
    [conn] = fake.gateway_connections
    assert conn == {
        "path": "/gateway",
        "query": {"v": "10", "encoding": "json", "compress": "zlib-stream"},
    }
    for path in ("/users/@me", "/oauth2/applications/@me", "/gateway/bot"):
        assert fake.calls_matching("GET", path), path


async def test_slash_command_sync_and_ephemeral_response(
    fake: FakeDiscord, ids: SeedIds, bot: Bot
) -> None:
    seen: dict[str, Any] = {}
    interview = app_commands.Group(
        name="interview",
        description="Run interviews",
        default_permissions=discord.Permissions(manage_guild=True),
    )

    @interview.command(name="start", description="Start an interview")
    async def start(interaction: discord.Interaction, candidate: discord.Member) -> None:
        assert isinstance(interaction.user, discord.Member)
        seen["manage_guild"] = interaction.user.guild_permissions.manage_guild
        seen["candidate"] = candidate.id
        callback = await interaction.response.send_message("Interview started", ephemeral=True)
        seen["callback"] = callback
        await interaction.followup.send("Details follow", ephemeral=True)
        await interaction.edit_original_response(content="Interview started!")
        seen["done"] = True

    bot.tree.add_command(interview, guild=discord.Object(ids.guild_id))
    synced = await bot.tree.sync(guild=discord.Object(ids.guild_id))
    [put] = fake.calls_matching("PUT", rf"/applications/{fake.application_id}/guilds/\d+/commands")
    assert put.json[0]["name"] == "interview"
    stored = fake.find_command("interview", ids.guild_id)
    assert stored["default_member_permissions"] == str(int(Perm.MANAGE_GUILD))
    assert synced[0].id == int(stored["id"])

    with pytest.raises(PermissionError):  # Discord hides the command from plain members
        await fake.send_slash_command(ids.guild_id, ids.channel_id, ids.member_id)
    iid = await fake.send_slash_command(
        ids.guild_id, ids.channel_id, ids.admin_id, options={"candidate": ids.member_id}
    )
    response = await fake.wait_interaction_response(iid)
    assert response["type"] == 4
    assert response["data"]["flags"] == 64
    assert response["data"]["content"] == "Interview started"
    await _eventually(lambda: "done" in seen)
    assert seen["manage_guild"] is True and seen["candidate"] == ids.member_id
    callback = seen["callback"]
    assert isinstance(callback, discord.InteractionCallbackResponse)
    assert callback.is_ephemeral() and callback.message_id == response["message_id"]

    [call] = fake.calls_matching("POST", rf"/interactions/{iid}/[^/]+/callback")
    assert call.query == {"with_response": "1"}
    assert "Authorization" not in call.headers
    kinds = [r["kind"] for r in fake.interaction_responses[iid]]
    assert kinds == ["callback", "followup", "edit_original"]
    contents = [(m["content"], m["ephemeral"]) for m in fake.channel_messages(ids.channel_id)]
    assert contents == [("Interview started!", True), ("Details follow", True)]

    token = fake.interactions[iid].token
    async with aiohttp.ClientSession() as http:
        url = f"{fake.api_base}/interactions/{iid}/{token}/callback"
        async with http.post(url, json={"type": 4, "data": {"content": "again"}}) as resp:
            assert resp.status == 400
            assert (await resp.json())["code"] == 40060


async def test_late_interaction_response_is_unknown(
    fake: FakeDiscord, ids: SeedIds, bot: Bot
) -> None:
    errors: list[discord.HTTPException] = []

    @bot.tree.command(name="slow", description="Answers too late")
    async def slow(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.3)
        try:
            await interaction.response.send_message("too late")
        except discord.HTTPException as exc:
            errors.append(exc)

    await bot.tree.sync()
    fake.interaction_ack_timeout = 0.2
    iid = await fake.send_slash_command(ids.guild_id, ids.channel_id, ids.member_id, "slow", None)
    await _eventually(lambda: bool(errors))
    assert isinstance(errors[0], discord.NotFound) and errors[0].code == 10062
    assert iid not in fake.interaction_responses


async def test_message_create_reaches_on_message(fake: FakeDiscord, ids: SeedIds, bot: Bot) -> None:
    mid = await fake.send_message(ids.channel_id, ids.member_id, "hello bot")
    await fake.send_message(ids.channel_id, ids.member_id, "hello bot", message_id=mid)
    await _eventually(lambda: len(bot.messages) == 2)
    assert [m.id for m in bot.messages] == [mid, mid]  # duplicate delivery, same id
    first = bot.messages[0]
    assert first.content == "hello bot" and first.author.id == ids.member_id
    assert isinstance(first.channel, discord.TextChannel) and first.guild is not None

    reply = await first.reply("hi!")
    assert reply.reference is not None and reply.reference.message_id == mid
    await _eventually(lambda: any(m.id == reply.id for m in bot.messages))  # echoed back


async def test_private_thread_flow(fake: FakeDiscord, ids: SeedIds, bot: Bot) -> None:
    channel = bot.get_channel(ids.channel_id)
    assert isinstance(channel, discord.TextChannel)
    thread = await channel.create_thread(
        name="interview-bob", type=discord.ChannelType.private_thread, invitable=False
    )
    assert thread.type is discord.ChannelType.private_thread and thread.parent_id == channel.id
    [create] = fake.calls_matching("POST", rf"/channels/{channel.id}/threads")
    assert create.json["type"] == 12 and create.json["invitable"] is False
    metadata = fake.threads[thread.id]["thread_metadata"]
    assert metadata["invitable"] is False and metadata["archived"] is False
    await _eventually(lambda: bot.get_channel(thread.id) is not None)  # THREAD_CREATE

    await thread.add_user(discord.Object(ids.member_id))
    assert fake.thread_members(thread.id) == sorted([fake.bot_user_id, ids.member_id])
    message = await thread.send("Welcome, Bob")
    edited = await message.edit(content="Welcome, Bob! You have 45 minutes.")
    assert edited.edited_at is not None
    [stored] = fake.channel_messages(thread.id)
    assert stored["content"] == "Welcome, Bob! You have 45 minutes." and stored["edit_count"] == 1

    await thread.edit(archived=True, locked=True)
    assert fake.threads[thread.id]["thread_metadata"]["locked"] is True
    with pytest.raises(discord.HTTPException) as info:
        await thread.send("after lock")
    assert info.value.code == 50083


async def test_rate_limits_are_handled_by_discord_py(
    fake: FakeDiscord, ids: SeedIds, bot: Bot
) -> None:
    channel = bot.get_channel(ids.channel_id)
    assert isinstance(channel, discord.TextChannel)
    fake.set_rate_limit(MESSAGES_ROUTE, 2, 0.3)
    fake.exhaust_bucket(MESSAGES_ROUTE, channel_id=ids.channel_id)  # another process used it
    sent = await channel.send("after a 429")
    assert sent.content == "after a 429"
    assert fake.rate_limited == 1
    statuses = [c.status for c in fake.calls_matching("POST", r"/channels/\d+/messages")]
    assert statuses == [429, 200]

    # A burst: discord.py paces itself on X-RateLimit-* (it may still overshoot a window when
    # several sends wake at a reset; the fake then answers 429 and discord.py retries).
    started = time.monotonic()
    await asyncio.gather(*(channel.send(f"burst {i}") for i in range(5)))
    assert time.monotonic() - started >= 0.5  # 5 messages at 2 per 0.3 s need 3 windows
    contents = [m["content"] for m in fake.channel_messages(ids.channel_id)]
    assert sorted(contents[1:]) == [f"burst {i}" for i in range(5)]
    burst = fake.calls_matching("POST", r"/channels/\d+/messages")[2:]
    assert sum(c.status == 200 for c in burst) == 5
    assert sum(c.status == 429 for c in burst) == fake.rate_limited - 1 <= 2


async def test_message_rules(fake: FakeDiscord, ids: SeedIds, bot: Bot) -> None:
    channel = bot.get_channel(ids.channel_id)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as too_long:
        await channel.send("x" * 2001)
    assert too_long.value.code == 50035 and too_long.value.status == 400

    status = await channel.send("Interview status: running")
    await status.edit(content="Interview status: 10 minutes left")
    fake.age_message(channel.id, status.id, 3601)
    with pytest.raises(discord.HTTPException) as aged:
        await status.edit(content="Interview status: 5 minutes left")
    assert aged.value.code == 30046 and aged.value.status == 400

    fake.old_message_edit_limit = 1
    other = await channel.send("Another status")
    fake.age_message(channel.id, other.id, 7200)
    await other.edit(content="one edit is allowed")
    with pytest.raises(discord.HTTPException) as second:
        await other.edit(content="the second is not")
    assert second.value.code == 30046


async def test_gateway_resume_after_drop(fake: FakeDiscord, ids: SeedIds, bot: Bot) -> None:
    await fake.drop_connections(code=4000)
    await asyncio.wait_for(bot.resumed.wait(), 3)
    assert fake.resumes == 1
    assert fake.gateway_connections[-1]["path"] == "/gateway-resume"
    assert len(fake.identify_payloads) == 1
    mid = await fake.send_message(ids.channel_id, ids.member_id, "still there?")
    await _eventually(lambda: any(m.id == mid for m in bot.messages))


async def test_refused_edits_answer_30046_and_deleted_messages_10008(
    fake: FakeDiscord, ids: SeedIds, bot: Bot
) -> None:
    channel = bot.get_channel(ids.channel_id)
    assert isinstance(channel, discord.TextChannel)
    counter = await channel.send("counter")
    await counter.edit(content="counter, edited")  # a fresh message: fine
    fake.refuse_edits(channel.id, counter.id)  # Discord's limit reached early for this one
    with pytest.raises(discord.HTTPException) as refused:
        await counter.edit(content="counter, refused")
    assert refused.value.status == 400 and refused.value.code == 30046
    url = f"{fake.api_base}/channels/{channel.id}/messages/{counter.id}"
    async with (
        aiohttp.ClientSession() as http,
        http.patch(url, json={"content": "x"}, headers={"Authorization": "Bot test-token"}) as r,
    ):
        assert r.status == 400
        assert await r.json() == {
            "message": "Maximum number of edits to messages older than 1 hour reached.",
            "code": 30046,
        }

    other = await channel.send("someone deletes this")
    await fake.delete_message(channel.id, other.id)
    assert fake.dispatched[-1] == (
        "MESSAGE_DELETE",
        {"id": str(other.id), "channel_id": str(channel.id), "guild_id": str(ids.guild_id)},
    )
    with pytest.raises(discord.NotFound) as gone:
        await other.edit(content="too late")
    assert gone.value.code == 10008
    assert fake.channel_messages(channel.id)[-1]["id"] == counter.id


async def test_gateway_outage_modes(fake: FakeDiscord, ids: SeedIds) -> None:
    async with aiohttp.ClientSession() as http:
        await fake.take_gateway_down("http", http_status=503)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(fake.gateway_url)
        assert refused.value.status == 503 and fake.refused_gateway_connections == 1

        await fake.take_gateway_down("close", close_code=4000)
        async with http.ws_connect(fake.gateway_url) as ws:
            closed = await ws.receive()
            assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 4000
        assert fake.refused_gateway_connections == 2

        await fake.take_gateway_down("stall")
        async with http.ws_connect(fake.resume_gateway_url) as ws:
            assert (await ws.receive_json())["op"] == 10  # HELLO, then nothing
            await ws.send_json({"op": 1, "d": None})  # a heartbeat: no ACK
            await ws.send_json({"op": 6, "d": {"token": "test-token", "session_id": "x"}})
            await fake.wait_for(lambda: fake.refused_gateway_connections == 3)
            await fake.bring_gateway_up()  # closes the stalled socket: reconnect now
            closed = await ws.receive()
            assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 4000

        async with http.ws_connect(fake.gateway_url) as ws:  # up again
            assert (await ws.receive_json())["op"] == 10
            await ws.send_json({"op": 1, "d": None})
            assert (await ws.receive_json())["op"] == 11
    assert fake.refused_gateway_connections == 3
    with pytest.raises(ValueError):
        await fake.take_gateway_down("unplugged")


async def test_gateway_down_then_up_resumes_the_session(
    fake: FakeDiscord, ids: SeedIds, bot: Bot
) -> None:
    await fake.take_gateway_down()  # discord.py retries the RESUME at once, again and again
    await fake.wait_for(lambda: fake.refused_gateway_connections >= 3)
    assert not bot.resumed.is_set()
    await fake.bring_gateway_up()
    await asyncio.wait_for(bot.resumed.wait(), 5)
    assert fake.resumes == 1 and len(fake.identify_payloads) == 1
    mid = await fake.send_message(ids.channel_id, ids.member_id, "back?")
    await _eventually(lambda: any(m.id == mid for m in bot.messages))
