"""The Slack adapter end to end: signed requests into the bot's real endpoint, the real
slack-bolt and slack_sdk against a fake Slack Web API, and a fake OpenAI server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
import pytest_asyncio
import yaml
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack.outbox import SlackOutbox
from adapters.slack.platform import SlackPlatform
from adapters.slack.runner import SlackAdapter
from bench.fakes.openai_server import FakeOpenAI
from bench.fakes.slack_server import FakeSlack
from bench.fakes.slack_signing import (
    block_action_body,
    event_body,
    message_event,
    signed_headers,
    slash_command_body,
    text_input_state,
    view_submission_body,
)
from bot.app import BotRuntime, slack_config
from bot.settings import Settings, load_settings
from core.clock import Clock, ManualClock
from core.counter import CounterView
from core.lifecycle import controls
from core.models import EndReason, Interview, Status, Turn
from core.ports import RateLimiter
from core.service import EngineConfig, InterviewService

SECRET = "test-signing-secret"
INTERVIEWER = "UINTVW01"
CANDIDATE = "UCANDI01"
STRANGER = "USTRNG01"
HANG_GUARD_S = 60.0
"""Only a guard against hanging: no test depends on anything being this fast."""


@dataclass
class SlackWorld:
    slack: FakeSlack
    openai: FakeOpenAI
    runtime: BotRuntime
    adapter: SlackAdapter
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.runtime.port}/slack/events"

    @property
    def service(self) -> InterviewService:
        assert self.runtime.service is not None
        return self.runtime.service

    async def send(self, body: str, **headers: Any) -> tuple[int, str]:
        async with self.http.post(
            self.url, data=body, headers=signed_headers(SECRET, body, **headers)
        ) as r:
            return r.status, await r.text()

    async def command(self, text: str, user: str = INTERVIEWER) -> list[dict[str, Any]]:
        """Run a slash command; return what the bot posted to its response_url."""
        response_url = self.slack.new_response_url()
        status, _ = await self.send(
            slash_command_body(text=text, user_id=user, response_url=response_url)
        )
        assert status == 200
        await self.settle()
        return self.slack.responses[response_url.rsplit("/", 1)[1]]

    async def say(
        self,
        channel: str,
        thread_ts: str,
        text: str,
        ts: str,
        user: str = CANDIDATE,
        retry: int | None = None,
        event_id: str | None = None,
    ) -> None:
        body = event_body(
            message_event(channel, user, text, ts, thread_ts=thread_ts), event_id=event_id
        )
        status, _ = await self.send(
            body, retry_num=retry, retry_reason="http_timeout" if retry else None
        )
        assert status == 200

    async def click(self, action_id: str, interview_id: str, user: str) -> list[dict[str, Any]]:
        response_url = self.slack.new_response_url()
        status, _ = await self.send(
            block_action_body(action_id, interview_id, user_id=user, response_url=response_url)
        )
        assert status == 200
        await self.settle()
        return self.slack.responses[response_url.rsplit("/", 1)[1]]

    async def settle(self) -> None:
        """Until the adapter's spawned work, the outbox and the engine are all idle."""
        for _ in range(3):
            await asyncio.sleep(0.05)
            await self.adapter.settle()
            await self.service.settle()

    async def interview(self, interview_id: str) -> Interview:
        found = await self.service.queries.interview(interview_id)
        assert found is not None
        return found

    async def turns(self, interview_id: str) -> list[Turn]:
        async with self.service.ctx.uow() as uow:
            return await uow.interviews.list_turns(interview_id)

    async def wait_for(self, condition: Callable[[], bool], *, settle: bool = True) -> None:
        """Poll real network events (with a guard against hanging, not a speed requirement)."""

        async def check() -> bool:
            return condition()

        await self.eventually(check, settle=settle)

    async def eventually(
        self, probe: Callable[[], Awaitable[bool]], *, settle: bool = True
    ) -> None:
        """Poll until ``probe`` is true; with ``settle``, let the adapter finish its work
        between polls (not while a test keeps a Slack call hanging on purpose)."""
        deadline = time.monotonic() + HANG_GUARD_S
        while not await probe():
            assert time.monotonic() < deadline, "condition not reached"
            await asyncio.sleep(0.05)
            if settle:
                await self.adapter.settle()


def slack_settings(tmp_path: Path, slack: FakeSlack, openai: FakeOpenAI, **extra: Any) -> Settings:
    defaults: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/slack.db",
        "slack_bot_token": slack.bot_token,
        "slack_signing_secret": SECRET,
        "slack_api_url": slack.api_url,
        "slack_interviewers": INTERVIEWER,
        "openai_api_key": "sk-test",
        "openai_base_url": openai.base_url,
        "llm_max_retries": 0,
        "http_host": "127.0.0.1",
        "http_port": 0,
    }
    return load_settings(**{**defaults, **extra})


@asynccontextmanager
async def slack_world(
    tmp_path: Path,
    *,
    window_s: float | None = None,
    tokens_per_chunk: int = 4,
    flush_interval_s: float = 0.05,
    clock: Clock | None = None,
    **settings: Any,
) -> AsyncIterator[SlackWorld]:
    """The whole bot with the Slack adapter against a fake Slack and a fake OpenAI.

    With ``window_s`` Slack's per-minute limits shrink to that window, on both sides. The
    adapter gets the rate limiter the bot builds (``SqlRateLimiter`` on the bot's database).
    """
    fake = FakeSlack() if window_s is None else FakeSlack(window_seconds=window_s)
    async with fake as slack, FakeOpenAI(tokens_per_chunk=tokens_per_chunk) as openai:
        slack.add_user(INTERVIEWER, name="ivy")
        slack.add_user(CANDIDATE, name="alice")
        slack.add_user(STRANGER, name="sam")
        slack.add_user("UADMIN01", name="ada", is_admin=True)
        bot_settings = slack_settings(tmp_path, slack, openai, **settings)
        adapters: list[SlackAdapter] = []

        def factory(service: InterviewService, limiter: RateLimiter) -> SlackAdapter:
            adapters.append(
                SlackAdapter(
                    slack_config(bot_settings),
                    service,
                    rate_limiter=limiter,
                    outbox_options=None if window_s is None else {"window_s": window_s},
                    flush_interval_s=flush_interval_s,
                )
            )
            return adapters[-1]

        runtime = BotRuntime(bot_settings, {"slack": factory}, clock=clock)
        await runtime.start()
        async with aiohttp.ClientSession() as http:
            try:
                yield SlackWorld(slack, openai, runtime, adapters[0], http)
            finally:
                await runtime.stop()


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[SlackWorld]:
    async with slack_world(tmp_path) as built:
        yield built


def root_of(world: SlackWorld) -> tuple[str, str]:
    (_call,) = world.slack.calls_to("conversations.open")
    channel = world.slack.conversation_with(INTERVIEWER, CANDIDATE)
    root = world.slack.channel_messages(channel)[0]
    return channel, root.ts


async def open_interview(
    world: SlackWorld, text: str = f"start <@{CANDIDATE}|alice> 45m 20k two-sum"
) -> tuple[str, str, str]:
    replies = await world.command(text)
    assert replies and replies[-1]["response_type"] == "ephemeral"
    assert replies[-1]["text"].startswith("Started `two-sum`"), replies
    channel, ts = root_of(world)
    (interview,) = await world.service.queries.open_interviews()
    return channel, ts, interview.id


def reply_finished(world: SlackWorld, channel: str, root_ts: str, text: str) -> bool:
    """A reply containing ``text`` has finished streaming in the interview's thread."""
    return any(text in m.text and not m.streaming for m in world.slack.thread(channel, root_ts)[1:])


async def test_whole_flow_start_chat_extend_exhaust_close(world: SlackWorld) -> None:
    channel, root_ts, interview_id = await open_interview(
        world, f"start <@{CANDIDATE}|alice> two-sum 4k 1h30m"
    )
    users = world.slack.calls_to("conversations.open")[0].params["users"]
    assert set(users.split(",")) == {CANDIDATE, INTERVIEWER}
    root = world.slack.message(channel, root_ts)
    assert "Two Sum" in json.dumps(root.blocks) and "<!date^" in json.dumps(root.blocks)
    assert {b.get("block_id") for b in root.blocks or []} >= {"counter", "controls"}

    world.openai.replies.append("Use a dictionary from value to index.\n```python\nseen = {}\n```")
    await world.say(channel, root_ts, "How do I start?", "1700000100.000100")
    await world.wait_for(lambda: reply_finished(world, channel, root_ts, "seen = {}"))
    reply = next(m for m in world.slack.thread(channel, root_ts) if m.bot_id and "seen" in m.text)
    assert "tokens this turn" in json.dumps(reply.blocks or reply.chunks or reply.history)
    assert world.slack.calls_to("chat.startStream") and world.slack.calls_to("chat.stopStream")
    await world.wait_for(
        lambda: (
            "tokens" in world.slack.message(channel, root_ts).text
            and world.slack.message(channel, root_ts).edited
        )
    )
    stored = await world.interview(interview_id)
    assert stored.tokens_used > 0
    await world.wait_for(
        lambda: (
            f"{stored.tokens_used:,} / 4,000"
            in json.dumps(world.slack.message(channel, root_ts).blocks)
        )
    )

    # +10 min by button
    responses = await world.click(blocks.action_id("extend_time"), interview_id, INTERVIEWER)
    assert responses == []
    stored = await world.interview(interview_id)
    assert stored.extra_time_s == 600

    # chat until the budget is gone
    for i in range(20):
        await world.say(channel, root_ts, f"Tell me more, part {i}", f"1700000200.{i:06d}")
        await world.settle()
        stored = await world.interview(interview_id)
        assert stored.tokens_used <= 4000
        if stored.status is Status.ENDED:
            break
    assert stored.end_reason is EndReason.TOKENS_EXHAUSTED
    await world.wait_for(
        lambda: (
            "controls"
            not in {b.get("block_id") for b in world.slack.message(channel, root_ts).blocks or []}
            # the closing note is paced like every post (about one a second per channel)
            and any(m.text.startswith("🏁") for m in world.slack.thread(channel, root_ts))
        )
    )
    thread_texts = [m.text for m in world.slack.thread(channel, root_ts)]
    # the candidate was warned before the end came
    warned = [i for i, t in enumerate(thread_texts) if "more message" in t or "may not fit" in t]
    ended = next(i for i, t in enumerate(thread_texts) if t.startswith("🏁"))
    assert warned and warned[0] < ended
    assert any("The token budget is used up" in t for t in thread_texts)

    await world.say(channel, root_ts, "hello?", "1700000300.000001")
    await world.settle()
    assert "This interview has ended" in world.slack.thread(channel, root_ts)[-1].text
    assert world.slack.rate_limited == []


async def test_web_api_calls_reuse_their_connections(world: SlackWorld) -> None:
    """The bot keeps one aiohttp session for Slack: calls one after another share a
    connection instead of opening (against slack.com: a TCP and TLS handshake) one each."""
    channel, root_ts, _ = await open_interview(world)
    world.openai.replies.append("Start with a dictionary.")
    await world.say(channel, root_ts, "How do I start?", "1700000100.000100")
    await world.wait_for(lambda: reply_finished(world, channel, root_ts, "dictionary"))
    await world.settle()
    calls, connections = len(world.slack.calls), len(set(world.slack.connections))
    assert calls >= 6 and connections <= calls // 4, (calls, connections)


async def test_replies_to_response_urls_reuse_their_connection(world: SlackWorld) -> None:
    """respond() sends on the bot's session too (Bolt's own opens one per reply)."""
    for text in ("challenges", "status", "challenges", "schedules"):
        (reply,) = await world.command(text)
        assert reply["response_type"] == "ephemeral" and reply["text"], reply
    posts = world.slack.response_connections
    assert len(posts) == 4 and len(set(posts)) == 1, posts


async def test_redelivered_events_produce_one_reply_and_one_charge(world: SlackWorld) -> None:
    channel, root_ts, interview_id = await open_interview(world)
    for retry in (None, 1, 2):
        await world.say(channel, root_ts, "What is a hash map?", "1700000400.000100", retry=retry)
    await world.settle()
    turns = await world.turns(interview_id)
    assert len(turns) == 1 and len(world.openai.requests) == 1
    stored = await world.interview(interview_id)
    assert stored.tokens_used == turns[0].charged_tokens


async def test_bot_edits_and_other_people_are_not_sent_to_the_model(world: SlackWorld) -> None:
    channel, root_ts, _ = await open_interview(world)
    changed = message_event(channel, CANDIDATE, "x", "1700000500.000100", thread_ts=root_ts)
    changed["subtype"] = "message_changed"
    await world.send(event_body(changed))
    await world.say(channel, root_ts, "interviewer note", "1700000500.000200", user=INTERVIEWER)
    await world.say(channel, "1700000000.999999", "wrong thread", "1700000500.000300")
    await world.settle()
    assert world.openai.requests == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frobnicate", "`frobnicate` is not an /interview command"),
        (f"start <@{CANDIDATE}|alice> 45", "A budget of 45 tokens is too small"),
        (f"start <@{CANDIDATE}|alice> 45x", "`45x` is neither a duration"),
        (f"start <@{CANDIDATE}|alice> 30m nope", "There is no challenge `nope`"),
        ("start 30m", "Mention the candidate first"),
        ("extend +10m", "You have no active interview"),
        (f"extend <@{CANDIDATE}|alice> +10m", "has no active interview"),
        ("config timezone Mars/Base", "`Mars/Base` is not a time zone"),
        (f"start <@{INTERVIEWER}|ivy> 30m", "You can't interview yourself"),
    ],
)
async def test_bad_input_gets_an_ephemeral_error_and_changes_nothing(
    world: SlackWorld, text: str, expected: str
) -> None:
    replies = await world.command(text)
    assert len(replies) == 1 and replies[0]["response_type"] == "ephemeral"
    assert replies[0]["text"].startswith("❌") and expected in replies[0]["text"], replies
    assert await world.service.queries.open_interviews() == []
    assert world.slack.calls_to("conversations.open") == []


async def test_candidate_already_in_an_interview_is_refused(world: SlackWorld) -> None:
    await open_interview(world)
    replies = await world.command(f"start <@{CANDIDATE}|alice> 30m")
    assert "already has an active interview" in replies[0]["text"]
    assert len(await world.service.queries.open_interviews()) == 1


async def test_only_interviewers_and_admins_may_act(world: SlackWorld) -> None:
    replies = await world.command(f"start <@{CANDIDATE}|alice> 30m", user=STRANGER)
    assert "Only interviewers" in replies[0]["text"]
    assert await world.service.queries.open_interviews() == []
    help_reply = await world.command("help", user=STRANGER)
    assert "/interview start" in help_reply[0]["text"]

    _, _, interview_id = await open_interview(world)
    for user in (CANDIDATE, STRANGER):
        for control in ("extend_time", "extend_tokens", "pause", "end"):
            refusal = await world.click(blocks.action_id(control), interview_id, user)
            assert refusal and refusal[0]["response_type"] == "ephemeral"
            assert refusal[0]["text"].startswith("❌")
    stored = await world.interview(interview_id)
    assert stored.status is Status.ACTIVE and stored.extra_time_s == 0

    # a workspace admin (users.info is_admin) is an interviewer too
    assert await world.click(blocks.action_id("pause"), interview_id, "UADMIN01") == []
    stored = await world.interview(interview_id)
    assert stored.status is Status.PAUSED
    assert await world.click(blocks.action_id("resume"), interview_id, INTERVIEWER) == []
    assert await world.click(blocks.action_id("end"), interview_id, INTERVIEWER) == []
    stored = await world.interview(interview_id)
    assert stored.end_reason is EndReason.ENDED_BY_INTERVIEWER


async def test_commands_extend_pause_status_and_config(world: SlackWorld) -> None:
    await open_interview(world)
    extended = await world.command("extend +5k")
    assert "Extended" in extended[0]["text"]
    (interview,) = await world.service.queries.open_interviews()
    assert interview.extra_tokens == 5000
    assert "Paused" in (await world.command(f"pause <@{CANDIDATE}|alice>"))[0]["text"]
    status = (await world.command("status"))[0]["text"]
    assert f"<@{CANDIDATE}>" in status and "paused" in status
    assert "Resumed" in (await world.command("resume"))[0]["text"]
    assert (
        "Evaluations will go to <#C0EVAL01>"
        in (await world.command("config channel <#C0EVAL01|evals>"))[0]["text"]
    )
    assert (
        "Interviewers:"
        in (await world.command(f"config interviewers <@{STRANGER}|sam>"))[0]["text"]
    )
    assert "Europe/Berlin" in (await world.command("config timezone Europe/Berlin"))[0]["text"]
    workspace = await world.service.queries.workspace("slack", "T0001")
    assert workspace.settings == {
        "interviewer_channel": "C0EVAL01",
        "interviewers": [STRANGER],
        "timezone": "Europe/Berlin",
    }
    # the newly configured interviewer may now act
    ended = await world.command(f"end <@{CANDIDATE}|alice>", user=STRANGER)
    assert ended[0]["text"] == f"Ended <@{CANDIDATE}>'s interview."
    challenges = (await world.command("challenges"))[0]["text"]
    assert "`two-sum`" in challenges and "`lru-cache`" in challenges


async def test_start_without_arguments_opens_a_modal_that_starts_the_interview(
    world: SlackWorld,
) -> None:
    # someone who is no interviewer is told so instead of getting the modal
    refused = await world.command("start", user=STRANGER)
    assert refused[0]["text"].startswith("❌ Only interviewers")
    assert world.slack.views == []

    trigger = world.slack.new_trigger_id()
    status, _ = await world.send(
        slash_command_body(
            text="start",
            user_id=INTERVIEWER,
            trigger_id=trigger,
            response_url=world.slack.new_response_url(),
        )
    )
    assert status == 200
    await world.settle()
    (opened,) = world.slack.views
    view = opened["view"] if isinstance(opened, dict) else opened.view
    assert view["callback_id"] == blocks.START_MODAL
    state = text_input_state({"duration": {"value": "nonsense"}, "tokens": {"value": "20k"}})
    state["candidate"] = {"value": {"type": "users_select", "selected_user": CANDIDATE}}
    state["challenge"] = {
        "value": {"type": "static_select", "selected_option": {"value": "lru-cache"}}
    }
    status, text = await world.send(
        view_submission_body(blocks.START_MODAL, state, user_id=INTERVIEWER)
    )
    assert status == 200 and json.loads(text)["response_action"] == "errors"
    assert set(json.loads(text)["errors"]) == {"duration"}
    state["duration"] = {"value": {"type": "plain_text_input", "value": "30m"}}
    # the same, valid, submission from someone who is no interviewer is refused in the modal
    status, text = await world.send(
        view_submission_body(blocks.START_MODAL, state, user_id=STRANGER)
    )
    assert status == 200 and set(json.loads(text)["errors"]) == {"candidate"}
    status, text = await world.send(
        view_submission_body(blocks.START_MODAL, state, user_id=INTERVIEWER)
    )
    assert status == 200
    await world.settle()
    (interview,) = await world.service.queries.open_interviews()
    assert (interview.challenge_slug, interview.time_limit_s, interview.token_budget) == (
        "lru-cache",
        1800,
        20000,
    )


async def test_unsigned_or_stale_requests_are_rejected(world: SlackWorld) -> None:
    body = slash_command_body(text="help", user_id=INTERVIEWER)
    async with world.http.post(world.url, data=body, headers=signed_headers("wrong", body)) as r:
        assert r.status == 401
    stale = signed_headers(SECRET, body, timestamp=int(time.time()) - 600)
    async with world.http.post(world.url, data=body, headers=stale) as r:
        assert r.status == 401
    assert await world.service.queries.open_interviews() == []


@pytest_asyncio.fixture
async def fast_world(tmp_path: Path) -> AsyncIterator[SlackWorld]:
    """Slack's per-minute limits scaled down to a 2-second window, on both sides."""
    async with slack_world(
        tmp_path, window_s=2.0, tokens_per_chunk=2, flush_interval_s=0.02
    ) as built:
        yield built


async def test_thirty_concurrent_interviews_stay_inside_the_rate_limits(
    fast_world: SlackWorld,
) -> None:
    world = fast_world
    candidates = [f"UCAND{i:04d}" for i in range(30)]
    await asyncio.gather(*(world.command(f"start <@{c}> 30m 20k two-sum") for c in candidates))
    opened = await world.service.queries.open_interviews()
    assert len(opened) == 30
    by_candidate = {i.candidate_id: i for i in opened}
    await asyncio.gather(
        *(
            world.say(
                by_candidate[c].platform_data["channel"],
                by_candidate[c].platform_data["thread_ts"],
                f"hello from {c}",
                f"1700001000.{n:06d}",
                user=c,
            )
            for n, c in enumerate(candidates)
        )
    )
    await world.wait_for(
        lambda: (
            len(world.openai.requests) == 30
            and all(
                any(
                    m.bot_id and "tokens this turn" in json.dumps(m.blocks or [])
                    for m in world.slack.thread(
                        i.platform_data["channel"], i.platform_data["thread_ts"]
                    )
                )
                for i in opened
            )
        ),
    )
    await world.settle()
    assert world.slack.rate_limited == []
    # every counter shows its interview's final token count
    for interview in opened:
        stored = await world.interview(interview.id)
        assert stored.tokens_used > 0
        root = world.slack.message(
            interview.platform_data["channel"], interview.platform_data["thread_ts"]
        )
        assert f"{stored.tokens_used:,} / 20,000" in json.dumps(root.blocks)


async def test_without_slack_streaming_replies_fill_in_by_chat_update(
    fast_world: SlackWorld,
) -> None:
    world = fast_world
    world.slack.streaming_enabled = False
    world.openai.chunk_delay = 0.003
    channel, root_ts, _ = await open_interview(world)
    long_code = (
        "```python\n"
        + "".join(f"value_{i} = {i} * 2  # step {i}\n" for i in range(250))
        + "```\nThat is all."
    )
    world.openai.replies.append(long_code)
    await world.say(channel, root_ts, "show me a long example", "1700000600.000100")
    await world.wait_for(
        lambda: any("That is all." in m.text for m in world.slack.thread(channel, root_ts))
    )
    await world.settle()
    replies = [m for m in world.slack.thread(channel, root_ts) if m.bot_id and "value_" in m.text]
    assert len(replies) >= 3
    for message in replies:
        assert len(message.text) <= 3000 and message.text.count("```") % 2 == 0
    assert replies[0].edited  # placeholder, then edits
    assert "tokens this turn" in json.dumps(replies[-1].blocks)
    assert world.slack.calls_to("chat.appendStream") == []
    assert world.slack.rate_limited == []


async def test_expired_stream_falls_back_to_chat_update(fast_world: SlackWorld) -> None:
    world = fast_world
    channel, root_ts, _ = await open_interview(world)
    world.openai.chunk_delay = 0.05
    world.openai.replies.append(" ".join(f"word{i}" for i in range(200)))
    await world.say(channel, root_ts, "talk", "1700000700.000100")
    await world.wait_for(lambda: bool(world.slack.calls_to("chat.appendStream")))
    stream = next(m for m in world.slack.thread(channel, root_ts) if m.streaming)
    world.slack.expire_stream(channel, stream.ts)
    await world.wait_for(
        lambda: (
            "word199" in world.slack.message(channel, stream.ts).text
            and "tokens this turn" in json.dumps(world.slack.message(channel, stream.ts).blocks)
        ),
    )
    assert "tokens this turn" in json.dumps(world.slack.message(channel, stream.ts).blocks)
    assert world.slack.rate_limited == []


def test_manifest_declares_the_command_events_and_least_scopes() -> None:
    manifest = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "adapters/slack/manifest.yml").read_text()
    )
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/interview" and command["should_escape"] is True
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["bot_events"] == ["message.mpim"]
    assert settings["interactivity"]["is_enabled"] is True
    for url in (
        command["url"],
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    ):
        assert url.endswith("/slack/events")
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert scopes == {
        "commands",
        "chat:write",
        "mpim:write",
        "mpim:history",
        "im:write",
        "users:read",
        "files:write",
    }


async def test_socket_mode_when_an_app_token_is_set(tmp_path: Path) -> None:
    async with slack_world(
        tmp_path, slack_app_token="xapp-test", slack_signing_secret=None
    ) as world:
        slack = world.slack
        await slack.wait_socket()
        assert slack.calls_to("apps.connections.open")
        response_url = slack.new_response_url()
        command = dict(
            parse_qsl(
                slash_command_body(
                    text=f"start <@{CANDIDATE}|alice> 30m 20k two-sum",
                    user_id=INTERVIEWER,
                    response_url=response_url,
                )
            )
        )
        # Like Slack, the fake gives up on an envelope not acknowledged within 3 s.
        ack = await slack.socket_send("slash_commands", command)
        assert ack["envelope_id"]
        await world.settle()
        (interview,) = await world.service.queries.open_interviews()
        assert slack.responses[response_url.rsplit("/", 1)[1]][0]["text"].startswith("Started")
        channel, thread_ts = (
            interview.platform_data["channel"],
            interview.platform_data["thread_ts"],
        )
        event = json.loads(
            event_body(
                message_event(channel, CANDIDATE, "hi", "1700000900.000100", thread_ts=thread_ts)
            )
        )
        await slack.socket_send("events_api", event)
        await slack.socket_send("events_api", event, retry_attempt=1, retry_reason="timeout")

        async def answered() -> bool:
            return len(await world.turns(interview.id)) == 1 and any(
                "tokens this turn" in json.dumps(m.blocks or [])
                for m in slack.thread(channel, thread_ts)
            )

        await world.eventually(answered)
        await world.settle()
        assert len(world.openai.requests) == 1  # the redelivery was not answered again


def counter_view(status: Status, seconds_left: int) -> CounterView:
    return CounterView(
        interview_id="i1",
        candidate_id=CANDIDATE,
        interviewer_id=INTERVIEWER,
        challenge_title="Two Sum",
        status=status,
        end_reason=EndReason.TIME_UP if status is Status.ENDED else None,
        seconds_left=seconds_left,
        allowed_seconds=45 * 60,
        deadline=None,
        tokens_used=0,
        token_budget=20_000,
        tokens_left=20_000,
        tokens_used_pct=0,
        time_left_pct=100 * seconds_left // (45 * 60),
        warning_level="ok",
        as_of=datetime(2026, 1, 2, 15, 0, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("status", "seconds_left", "every"),
    [
        (Status.ACTIVE, 45 * 60, 60.0),
        (Status.ACTIVE, 301, 60.0),
        (Status.ACTIVE, 300, 15.0),  # the last five minutes
        (Status.ACTIVE, 1, 15.0),
        (Status.PAUSED, 45 * 60, None),  # the clock stands still: nothing to redraw
        (Status.PAUSED, 60, None),
        (Status.SCHEDULED, 45 * 60, None),
        (Status.ENDED, 60, None),
    ],
)
async def test_counters_refresh_every_minute_and_every_15_s_at_the_end(
    status: Status, seconds_left: int, every: float | None
) -> None:
    platform = SlackPlatform(
        SlackOutbox(AsyncWebClient(token="xoxb-test")), no_challenge, controls(EngineConfig())
    )
    assert platform.counter_refresh_s(counter_view(status, seconds_left)) == every


async def no_challenge(interview: Interview) -> None:
    return None


async def test_a_queued_counter_is_drawn_at_its_slot_and_only_clicks_jump_ahead() -> None:
    """Under load a redraw waits its turn: it shows the time left when it is sent, and only a
    new status or limit goes ahead of the round (new token totals and warning levels wait:
    the reply's footer and the warning's notice show them at once)."""
    now = [datetime(2026, 1, 2, 15, 0, tzinfo=UTC)]
    outbox = SlackOutbox(AsyncWebClient(token="xoxb-test"))
    platform = SlackPlatform(outbox, no_challenge, controls(EngineConfig()), clock=lambda: now[0])
    queued: list[tuple[bool, Any]] = []

    def update(channel: str, ts: str, *, urgent: bool = False, render: Any = None) -> None:
        queued.append((urgent, render))

    outbox.update = update  # type: ignore[assignment,method-assign]
    interview: Any = SimpleNamespace(id="i1", platform_data={"channel": "G1", "thread_ts": "1.0"})
    view = replace(counter_view(Status.ACTIVE, 600), deadline=now[0] + timedelta(seconds=600))
    await platform.show_counter(interview, view)
    now[0] += timedelta(seconds=90)  # the slot comes a minute and a half later
    assert "8m 30s left" in queued[-1][1]()["text"]
    await platform.show_counter(interview, replace(view, tokens_used=900, tokens_left=19_100))
    await platform.show_counter(interview, replace(view, warning_level="notice"))
    await platform.show_counter(interview, replace(view, allowed_seconds=3300))  # extended
    await platform.show_counter(interview, replace(view, status=Status.PAUSED))
    assert [urgent for urgent, _ in queued] == [True, False, False, True, True]


async def test_the_engines_tick_redraws_the_slack_counters(tmp_path: Path) -> None:
    """The tick is the engine's durable job (claimed in the database, so one process redraws
    a counter); Slack only says how often, and the redraw goes out as a chat.update."""
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    # No periodic sweep during the test: only the run_due calls below run jobs.
    async with slack_world(tmp_path, clock=clock, job_sweep_s=300) as world:
        long_channel, long_ts, long_id = await open_interview(world)  # 45 minutes
        await world.command(f"start <@{STRANGER}|sam> 4m 20k two-sum")
        short = await world.service.queries.for_candidate(
            (await world.service.queries.workspace("slack", "T0001")).id, STRANGER
        )
        assert short is not None
        short_channel, short_ts = short.platform_data["channel"], short.platform_data["thread_ts"]
        started = clock.now()

        async def next_tick(interview_id: str) -> datetime:
            async with world.service.ctx.uow() as uow:
                job = await uow.jobs.get(f"tick:{interview_id}")
            assert job is not None and job.done_at is None
            return job.due_at

        def redraws(channel: str, ts: str) -> list[str]:
            return [
                json.dumps(c.params["blocks"])
                for c in world.slack.calls_to("chat.update")
                if (c.params["channel"], c.params["ts"]) == (channel, ts)
            ]

        assert await next_tick(long_id) == started + timedelta(seconds=60)
        assert await next_tick(short.id) == started + timedelta(seconds=15)  # the last 5 min
        long_before, short_before = redraws(long_channel, long_ts), redraws(short_channel, short_ts)

        clock.advance(15)
        await world.service.jobs.run_due()
        await world.settle()
        assert redraws(long_channel, long_ts) == long_before  # not due yet
        (redrawn,) = redraws(short_channel, short_ts)[len(short_before) :]
        assert "3m 45s" in redrawn
        assert await next_tick(short.id) == started + timedelta(seconds=30)

        clock.advance(45)
        await world.service.jobs.run_due()
        await world.settle()
        (redrawn,) = redraws(long_channel, long_ts)[len(long_before) :]
        assert "44m" in redrawn
        assert "3m" in redraws(short_channel, short_ts)[-1]
        assert await next_tick(long_id) == started + timedelta(seconds=120)
        assert world.slack.rate_limited == []


async def test_commands_are_acknowledged_before_the_work_is_done(world: SlackWorld) -> None:
    world.slack.hold("conversations.open")  # opening the interview's group DM hangs
    response_url = world.slack.new_response_url()
    status, _ = await world.send(
        slash_command_body(
            text=f"start <@{CANDIDATE}|alice> 30m", user_id=INTERVIEWER, response_url=response_url
        )
    )
    assert status == 200  # Bolt answers 404 when a listener doesn't ack within 3 s
    await world.wait_for(lambda: bool(world.slack.calls_to("conversations.open")), settle=False)
    answers = world.slack.responses[response_url.rsplit("/", 1)[1]]
    assert answers == []  # the work is still under way
    world.slack.release("conversations.open")
    await world.settle()
    assert answers[0]["text"].startswith("Started `two-sum`")


async def test_candidate_writing_beside_the_thread_is_shown_where_to_write(
    world: SlackWorld,
) -> None:
    channel, _, _ = await open_interview(world)
    await world.send(event_body(message_event(channel, CANDIDATE, "hello?", "1700000800.000100")))
    await world.send(event_body(message_event(channel, INTERVIEWER, "hi", "1700000800.000200")))
    await world.settle()
    (hint,) = world.slack.ephemerals
    assert hint.user == CANDIDATE and "reply in the thread" in hint.text
    assert world.openai.requests == []
