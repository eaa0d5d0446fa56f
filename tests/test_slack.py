"""The Slack adapter end to end: signed requests into the bot's real endpoint, the real
slack-bolt and slack_sdk against a fake Slack Web API, and a fake OpenAI server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
import pytest_asyncio
import yaml

from adapters.slack import blocks
from adapters.slack.runner import SlackAdapter
from bot.app import BotRuntime, slack_config
from bot.settings import Settings, load_settings
from core.models import EndReason, Status
from core.service import InterviewService
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import FakeSlack
from tests.fakes.slack_signing import (
    block_action_body,
    event_body,
    message_event,
    signed_headers,
    slash_command_body,
    text_input_state,
    view_submission_body,
)

SECRET = "test-signing-secret"
INTERVIEWER = "UINTVW01"
CANDIDATE = "UCANDI01"
STRANGER = "USTRNG01"


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

    async def send(self, body: str, **headers: Any) -> tuple[int, str, float]:
        started = time.monotonic()
        async with self.http.post(
            self.url, data=body, headers=signed_headers(SECRET, body, **headers)
        ) as r:
            return r.status, await r.text(), time.monotonic() - started

    async def command(self, text: str, user: str = INTERVIEWER) -> list[dict[str, Any]]:
        """Run a slash command; return what the bot posted to its response_url."""
        response_url = self.slack.new_response_url()
        status, _, elapsed = await self.send(
            slash_command_body(text=text, user_id=user, response_url=response_url)
        )
        assert status == 200 and elapsed < 3.0
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
        status, _, elapsed = await self.send(
            body, retry_num=retry, retry_reason="http_timeout" if retry else None
        )
        assert status == 200 and elapsed < 3.0

    async def click(self, action_id: str, interview_id: str, user: str) -> list[dict[str, Any]]:
        response_url = self.slack.new_response_url()
        status, _, elapsed = await self.send(
            block_action_body(action_id, interview_id, user_id=user, response_url=response_url)
        )
        assert status == 200 and elapsed < 3.0
        await self.settle()
        return self.slack.responses[response_url.rsplit("/", 1)[1]]

    async def settle(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0.05)
            await self.adapter.settle()
            await self.service.settle()

    async def wait_for(self, condition: Callable[[], bool], limit_s: float = 10.0) -> None:
        deadline = time.monotonic() + limit_s
        while not condition():
            assert time.monotonic() < deadline, "condition not reached"
            await asyncio.sleep(0.05)
            await self.adapter.settle()


def slack_settings(tmp_path: Path, slack: FakeSlack, openai: FakeOpenAI, **extra: Any) -> Settings:
    return load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/slack.db",
        slack_bot_token=slack.bot_token if hasattr(slack, "bot_token") else "xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=slack.api_url,
        slack_interviewers=INTERVIEWER,
        openai_api_key="sk-test",
        openai_base_url=openai.base_url,
        llm_max_retries=0,
        http_host="127.0.0.1",
        http_port=0,
        **extra,
    )


@pytest_asyncio.fixture
async def world(tmp_path: Path) -> AsyncIterator[SlackWorld]:
    async with FakeSlack() as slack, FakeOpenAI(tokens_per_chunk=4) as openai:
        slack.add_user(INTERVIEWER, name="ivy")
        slack.add_user(CANDIDATE, name="alice")
        slack.add_user(STRANGER, name="sam")
        slack.add_user("UADMIN01", name="ada", is_admin=True)
        settings = slack_settings(tmp_path, slack, openai)
        adapters: list[SlackAdapter] = []

        def factory(service: InterviewService) -> SlackAdapter:
            adapters.append(
                SlackAdapter(slack_config(settings), service, flush_interval_s=0.05, tick_s=3600)
            )
            return adapters[0]

        runtime = BotRuntime(settings, {"slack": factory})
        await runtime.start()
        async with aiohttp.ClientSession() as http:
            try:
                yield SlackWorld(slack, openai, runtime, adapters[0], http)
            finally:
                await runtime.stop()


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
    (interview,) = await world.service.store.list_open()
    return channel, ts, interview.id


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
    await world.wait_for(
        lambda: any(
            "seen = {}" in m.text and not m.streaming
            for m in world.slack.thread(channel, root_ts)[1:]
        )
    )
    reply = next(m for m in world.slack.thread(channel, root_ts) if m.bot_id and "seen" in m.text)
    assert "tokens this turn" in json.dumps(reply.blocks or reply.chunks or reply.history)
    assert world.slack.calls_to("chat.startStream") and world.slack.calls_to("chat.stopStream")
    await world.wait_for(
        lambda: (
            "tokens" in world.slack.message(channel, root_ts).text
            and world.slack.message(channel, root_ts).edited
        )
    )
    stored = await world.service.store.get_interview(interview_id)
    assert stored is not None and stored.tokens_used > 0
    await world.wait_for(
        lambda: (
            f"{stored.tokens_used:,} / 4,000"
            in json.dumps(world.slack.message(channel, root_ts).blocks)
        )
    )

    # +10 min by button
    responses = await world.click(blocks.EXTEND_TIME, interview_id, INTERVIEWER)
    assert responses == []
    stored = await world.service.store.get_interview(interview_id)
    assert stored is not None and stored.extra_time_s == 600

    # chat until the budget is gone
    for i in range(20):
        await world.say(channel, root_ts, f"Tell me more, part {i}", f"1700000200.{i:06d}")
        await world.settle()
        stored = await world.service.store.get_interview(interview_id)
        assert stored is not None and stored.tokens_used <= 4000
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


async def test_redelivered_events_produce_one_reply_and_one_charge(world: SlackWorld) -> None:
    channel, root_ts, interview_id = await open_interview(world)
    for retry in (None, 1, 2):
        await world.say(channel, root_ts, "What is a hash map?", "1700000400.000100", retry=retry)
    await world.settle()
    turns = await world.service.store.list_turns(interview_id)
    assert len(turns) == 1 and len(world.openai.requests) == 1
    stored = await world.service.store.get_interview(interview_id)
    assert stored is not None and stored.tokens_used == turns[0].charged_tokens


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
    assert await world.service.store.list_open() == []
    assert world.slack.calls_to("conversations.open") == []


async def test_candidate_already_in_an_interview_is_refused(world: SlackWorld) -> None:
    await open_interview(world)
    replies = await world.command(f"start <@{CANDIDATE}|alice> 30m")
    assert "already has an active interview" in replies[0]["text"]
    assert len(await world.service.store.list_open()) == 1


async def test_only_interviewers_and_admins_may_act(world: SlackWorld) -> None:
    replies = await world.command(f"start <@{CANDIDATE}|alice> 30m", user=STRANGER)
    assert "Only interviewers" in replies[0]["text"]
    assert await world.service.store.list_open() == []
    help_reply = await world.command("help", user=STRANGER)
    assert "/interview start" in help_reply[0]["text"]

    _, _, interview_id = await open_interview(world)
    for user in (CANDIDATE, STRANGER):
        for action in (blocks.EXTEND_TIME, blocks.EXTEND_TOKENS, blocks.PAUSE, blocks.END):
            refusal = await world.click(action, interview_id, user)
            assert refusal and refusal[0]["response_type"] == "ephemeral"
            assert refusal[0]["text"].startswith("❌")
    stored = await world.service.store.get_interview(interview_id)
    assert stored is not None and stored.status is Status.ACTIVE and stored.extra_time_s == 0

    # a workspace admin (users.info is_admin) is an interviewer too
    assert await world.click(blocks.PAUSE, interview_id, "UADMIN01") == []
    stored = await world.service.store.get_interview(interview_id)
    assert stored is not None and stored.status is Status.PAUSED
    assert await world.click(blocks.RESUME, interview_id, INTERVIEWER) == []
    assert await world.click(blocks.END, interview_id, INTERVIEWER) == []
    stored = await world.service.store.get_interview(interview_id)
    assert stored is not None and stored.end_reason is EndReason.ENDED_BY_INTERVIEWER


async def test_commands_extend_pause_status_and_config(world: SlackWorld) -> None:
    await open_interview(world)
    extended = await world.command("extend +5k")
    assert "Extended" in extended[0]["text"]
    (interview,) = await world.service.store.list_open()
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
    workspace = await world.service.store.get_or_create_workspace("slack", "T0001")
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
    trigger = world.slack.new_trigger_id()
    status, _, elapsed = await world.send(
        slash_command_body(
            text="start",
            user_id=INTERVIEWER,
            trigger_id=trigger,
            response_url=world.slack.new_response_url(),
        )
    )
    assert status == 200 and elapsed < 3.0
    await world.settle()
    (opened,) = world.slack.views
    view = opened["view"] if isinstance(opened, dict) else opened.view
    assert view["callback_id"] == blocks.START_MODAL
    state = text_input_state({"duration": {"value": "nonsense"}, "tokens": {"value": "20k"}})
    state["candidate"] = {"value": {"type": "users_select", "selected_user": CANDIDATE}}
    state["challenge"] = {
        "value": {"type": "static_select", "selected_option": {"value": "lru-cache"}}
    }
    status, text, _ = await world.send(
        view_submission_body(blocks.START_MODAL, state, user_id=INTERVIEWER)
    )
    assert status == 200 and json.loads(text)["response_action"] == "errors"
    assert "duration" in json.loads(text)["errors"]
    state["duration"] = {"value": {"type": "plain_text_input", "value": "30m"}}
    status, text, _ = await world.send(
        view_submission_body(blocks.START_MODAL, state, user_id=INTERVIEWER)
    )
    assert status == 200
    await world.settle()
    (interview,) = await world.service.store.list_open()
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
    assert await world.service.store.list_open() == []


@pytest_asyncio.fixture
async def fast_world(tmp_path: Path) -> AsyncIterator[SlackWorld]:
    """Slack's per-minute limits scaled down to a 2-second window, on both sides."""
    async with FakeSlack(window_seconds=2.0) as slack, FakeOpenAI(tokens_per_chunk=2) as openai:
        slack.add_user(INTERVIEWER, name="ivy")
        settings = slack_settings(tmp_path, slack, openai)
        adapters: list[SlackAdapter] = []

        def factory(service: InterviewService) -> SlackAdapter:
            adapters.append(
                SlackAdapter(
                    slack_config(settings),
                    service,
                    outbox_options={"window_s": 2.0},
                    flush_interval_s=0.02,
                    tick_s=3600,
                )
            )
            return adapters[0]

        runtime = BotRuntime(settings, {"slack": factory})
        await runtime.start()
        async with aiohttp.ClientSession() as http:
            try:
                yield SlackWorld(slack, openai, runtime, adapters[0], http)
            finally:
                await runtime.stop()


async def test_thirty_concurrent_interviews_stay_inside_the_rate_limits(
    fast_world: SlackWorld,
) -> None:
    world = fast_world
    candidates = [f"UCAND{i:04d}" for i in range(30)]
    await asyncio.gather(*(world.command(f"start <@{c}> 30m 20k two-sum") for c in candidates))
    opened = await world.service.store.list_open()
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
        limit_s=60,
    )
    await world.settle()
    assert world.slack.rate_limited == []
    # every counter shows its interview's final token count
    for interview in opened:
        stored = await world.service.store.get_interview(interview.id)
        assert stored is not None and stored.tokens_used > 0
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
        limit_s=20,
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
    async with FakeSlack() as slack, FakeOpenAI() as openai:
        settings = slack_settings(tmp_path, slack, openai, slack_app_token="xapp-test")
        settings = settings.model_copy(update={"slack_signing_secret": None})
        adapters: list[SlackAdapter] = []

        def factory(service: InterviewService) -> SlackAdapter:
            adapters.append(
                SlackAdapter(slack_config(settings), service, flush_interval_s=0.05, tick_s=3600)
            )
            return adapters[0]

        runtime = BotRuntime(settings, {"slack": factory})
        await runtime.start()
        try:
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
            started = time.monotonic()
            ack = await slack.socket_send("slash_commands", command)
            assert time.monotonic() - started < 3.0 and ack["envelope_id"]
            assert runtime.service is not None
            await adapters[0].settle()
            (interview,) = await runtime.service.store.list_open()
            assert slack.responses[response_url.rsplit("/", 1)[1]][0]["text"].startswith("Started")
            channel, thread_ts = (
                interview.platform_data["channel"],
                interview.platform_data["thread_ts"],
            )
            event = json.loads(
                event_body(
                    message_event(
                        channel, CANDIDATE, "hi", "1700000900.000100", thread_ts=thread_ts
                    )
                )
            )
            await slack.socket_send("events_api", event)
            await slack.socket_send("events_api", event, retry_attempt=1, retry_reason="timeout")
            deadline = time.monotonic() + 10
            while len(await runtime.service.store.list_turns(interview.id)) < 1 or not any(
                "tokens this turn" in json.dumps(m.blocks or [])
                for m in slack.thread(channel, thread_ts)
            ):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await adapters[0].settle()
            assert len(openai.requests) == 1  # the redelivery was not answered again
        finally:
            await runtime.stop()


async def test_counters_refresh_every_minute_and_every_15_s_at_the_end(world: SlackWorld) -> None:
    now = [1000.0]
    world.adapter._monotonic = lambda: now[0]
    await open_interview(world, f"start <@{CANDIDATE}|alice> 45m 20k two-sum")
    await world.command(f"start <@{STRANGER}|sam> 4m 20k two-sum")
    await world.settle()

    async def refreshed() -> set[str]:
        before = len(world.slack.calls_to("chat.update"))
        await world.adapter.refresh_counters()
        await world.adapter.outbox.flush()
        return {c.params["ts"] for c in world.slack.calls_to("chat.update")[before:]}

    opened = {
        i.candidate_id: i.platform_data["thread_ts"] for i in await world.service.store.list_open()
    }
    assert await refreshed() == {opened[CANDIDATE], opened[STRANGER]}
    assert await refreshed() == set()
    now[0] += 16  # the 4-minute interview is in its last 5 minutes: 15 s cadence
    assert await refreshed() == {opened[STRANGER]}
    now[0] += 45
    assert await refreshed() == {opened[CANDIDATE], opened[STRANGER]}


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
