"""The Slack outbox against the fake Web API: coalescing, pacing, budgets shared by
processes, and slack_sdk's own retries of 429s and server errors."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.limiter import MemoryRateLimiter
from adapters.slack.outbox import DEFAULT_LIMITS, TIER_3, Limit, SlackOutbox
from bench.fakes.slack_server import Call, FakeSlack
from core.ports import RateLimiter
from storage import SqlRateLimiter, UnitOfWorkFactory, make_engine
from tests.conftest import Backend

TEAM = "T0001"  # the fake's workspace


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(window_seconds=2.0) as fake:
        yield fake


def client_of(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.api_url)


async def posted(outbox: SlackOutbox, channel: str) -> str:
    return str((await outbox.post(channel=channel, text="v0"))["ts"])


async def group_dm(outbox: SlackOutbox) -> str:
    return str((await outbox.call("conversations.open", users="U1,U2"))["channel"]["id"])


def most_in_a_window(calls: Sequence[Call], window_s: float) -> int:
    """The most calls the fake admitted in any window of ``window_s`` (its own clock)."""
    stamps = sorted(call.at for call in calls)
    most, first = 0, 0
    for last, stamp in enumerate(stamps):
        while stamp - stamps[first] >= window_s:
            first += 1
        most = max(most, last - first + 1)
    return most


# ---------------------------------------------------------------- budgets


def test_budgets_are_keyed_by_workspace_method_and_channel() -> None:
    outbox = SlackOutbox(AsyncWebClient(token="xoxb-test"), team_id=TEAM, window_s=2.0)
    assert outbox.budget("chat.update") == (f"slack:{TEAM}:chat.update", 49 / 2.0, 1)
    assert outbox.budget("chat.appendStream") == (f"slack:{TEAM}:chat.appendStream", 45.0, 5)
    assert outbox.budget("chat.postMessage", "G1") == (f"slack:{TEAM}:chat.postMessage:G1", 1, 3)
    assert outbox.budget("auth.test") is None  # not limited here
    # GCRA lets at most burst - 1 + ceil(W x rate) into any window of W: a window one second
    # longer than Slack's minute (a call reaching Slack 1 s later than the one 50 calls
    # before it) still stays inside its tiers.
    for method, limit in DEFAULT_LIMITS.items():
        slack_tier = 50 if limit == TIER_3 else 100
        assert limit.burst - 1 + math.ceil(limit.calls * 61 / 60) <= slack_tier, method


async def test_memory_limiter_follows_the_sql_limiters_rule(database: UnitOfWorkFactory) -> None:
    """Both are GCRA: ``burst`` at once, then one every 1/rate; idle time refills the burst."""
    now = [1000.0]
    slept: dict[str, list[float]] = {"memory": [], "sql": []}

    def sleeper(kind: str) -> Callable[[float], Awaitable[None]]:
        async def sleep(seconds: float) -> None:
            slept[kind].append(round(seconds, 6))

        return sleep

    limiters: dict[str, RateLimiter] = {
        "memory": MemoryRateLimiter(lambda: now[0], sleeper("memory")),
        "sql": SqlRateLimiter(database.engine, lambda: now[0], sleeper("sql")),
    }
    for limiter in limiters.values():
        now[0] = 1000.0
        for _ in range(5):  # burst 2, then 1 every 0.5 s: waits 0.5, 1.0, 1.5
            await limiter.acquire("k", 2.0, 2)
        now[0] += 10.0  # idle: the burst is back
        for _ in range(3):
            await limiter.acquire("k", 2.0, 2)
        await limiter.acquire("other", 2.0, 2)  # keys don't share
    assert slept["memory"] == [0.5, 1.0, 1.5, 0.5]
    assert slept["sql"] == slept["memory"]


# ---------------------------------------------------------------- coalescing


async def test_updates_to_one_message_coalesce_to_the_latest_state(slack: FakeSlack) -> None:
    outbox = SlackOutbox(client_of(slack), team_id=TEAM, window_s=2.0)
    channel = await group_dm(outbox)
    ts = await posted(outbox, channel)
    futures = [outbox.update(channel, ts, text=f"v{i}") for i in range(1, 21)]
    await asyncio.gather(*futures)
    await outbox.flush()
    assert slack.message(channel, ts).text == "v20"
    assert len(slack.calls_to("chat.update")) <= 2  # 20 wishes, at most 2 edits
    await outbox.close()


async def test_urgent_updates_jump_the_queue() -> None:
    async with FakeSlack(window_seconds=0.5) as slack:
        slack.set_limit("chat.update", 1)
        # One edit per 0.6 s against Slack's one per 0.5 s: headroom for network jitter.
        outbox = SlackOutbox(
            client_of(slack), team_id=TEAM, window_s=0.6, limits={"chat.update": Limit(1, 1)}
        )
        channel = await group_dm(outbox)
        stamps = [await posted(outbox, channel) for _ in range(4)]
        for ts in stamps[:3]:
            outbox.update(channel, ts, text="routine")
        await outbox.update(channel, stamps[3], text="final", urgent=True)
        edited = [call.params["ts"] for call in slack.calls_to("chat.update")]
        assert edited.index(stamps[3]) <= 1  # behind at most the edit already under way
        await outbox.flush()
        assert slack.rate_limited == []
        await outbox.close()


class RecordingClient(AsyncWebClient):
    """Answers ``chat.update`` at once, records the order of the edits, and moves ``now``
    on by a second with each."""

    def __init__(self) -> None:
        super().__init__(token="xoxb-test")
        self.edited: list[str] = []
        self.now = 0.0

    async def chat_update(self, **kwargs: Any) -> Any:
        self.edited.append(f"{kwargs['ts']}:{kwargs.get('text')}")
        self.now += 1
        return SimpleNamespace(data={"ok": True})


async def test_routine_updates_take_turns_by_their_last_update() -> None:
    """A fair round-robin: the message updated longest ago goes first, whatever the order
    the updates were queued in; urgent ones go before all of them."""
    client = RecordingClient()
    outbox = SlackOutbox(client, clock=lambda: client.now)
    for ts in ("c", "b", "a"):  # never updated: in the order queued
        outbox.update("G1", ts, text="1")
        client.now += 0.1
    await outbox.flush()
    assert client.edited == ["c:1", "b:1", "a:1"]
    client.now += 10
    for ts in ("a", "b", "c"):  # queued in the other order: c was updated longest ago
        outbox.update("G1", ts, text="2")
    outbox.update("G1", "b", text="3", urgent=True)  # replaces b's update and jumps ahead
    await outbox.flush()
    assert client.edited[3:] == ["b:3", "c:2", "a:2"]
    await outbox.close()


async def test_a_rendered_update_shows_the_state_when_its_slot_comes() -> None:
    client = RecordingClient()
    outbox = SlackOutbox(client)
    state = ["queued"]
    sent = outbox.update("G1", "1.0", render=lambda: {"text": state[0]})
    state[0] = "at its slot"
    await sent
    assert client.edited == ["1.0:at its slot"]
    await outbox.close()


async def test_an_update_takes_its_slot_before_it_picks_the_state(slack: FakeSlack) -> None:
    """A state replaced while waiting for a slot is never sent: the slot goes to the latest."""
    slack.set_limit("chat.update", 1)
    outbox = SlackOutbox(
        client_of(slack), team_id=TEAM, window_s=2.5, limits={"chat.update": Limit(1, 1)}
    )
    channel = await group_dm(outbox)
    ts = await posted(outbox, channel)
    first = outbox.update(channel, ts, text="v1")
    await first  # sent at once (the burst); the next slot is 2.5 s away
    outbox.update(channel, ts, text="v2")
    await asyncio.sleep(0)  # the worker now waits for the slot, v2 still queued
    latest = outbox.update(channel, ts, text="v3")
    await latest
    assert [call.params["text"] for call in slack.calls_to("chat.update")] == ["v1", "v3"]
    await outbox.close()


# ---------------------------------------------------------------- pacing


async def test_posts_are_paced_per_channel() -> None:
    # Our bucket holds one message less than the server's: headroom for network jitter.
    async with FakeSlack(post_message_burst=4, post_message_rate=10.0) as slack:
        outbox = SlackOutbox(client_of(slack), team_id=TEAM, post_burst=3, post_rate=10.0)
        channels = [await group_dm(outbox)]
        channels.append(
            str((await outbox.call("conversations.open", users="U1,U3"))["channel"]["id"])
        )
        await asyncio.gather(
            *(outbox.post(channel=c, text=str(i)) for i in range(8) for c in channels)
        )
        assert slack.rate_limited == []  # 8 at once per channel would be 4 over the burst
        assert [len(slack.channel_messages(c)) for c in channels] == [8, 8]
        await outbox.close()


async def push_updates(slack: FakeSlack, outboxes: Sequence[SlackOutbox], per_outbox: int) -> None:
    """Each outbox (a process) edits messages of its own as fast as its budget allows."""
    slack.rate_limits_enabled = False  # setting up is not what is measured
    channel = await group_dm(outboxes[0])
    setup = client_of(slack)
    stamps: list[list[str]] = [[] for _ in outboxes]
    for own in stamps:
        for _ in range(per_outbox):
            own.append(str((await setup.chat_postMessage(channel=channel, text="v0"))["ts"]))
    slack.rate_limits_enabled = True
    slack.reset_rate_limits()
    slack.calls.clear()
    edits = [
        outbox.update(channel, ts, text=f"edited by {index}")
        for index, outbox in enumerate(outboxes)
        for ts in stamps[index]
    ]
    await asyncio.gather(*edits, return_exceptions=True)
    for outbox in outboxes:
        await outbox.flush()
        await outbox.close()


@pytest_asyncio.fixture
async def second_engine(backend: Backend) -> AsyncIterator[SqlRateLimiter]:
    """The rate limiter of a second process: its own engine on the same database."""
    engine = make_engine(backend.url, connect_args=backend.connect_args)
    try:
        yield SqlRateLimiter(engine)
    finally:
        await engine.dispose()


async def test_two_processes_sharing_the_sql_limiter_stay_inside_tier_3(
    database: UnitOfWorkFactory, second_engine: SqlRateLimiter
) -> None:
    # A window of 4 s leaves calls 80 ms of jitter (1.2 s of Slack's minute, scaled down).
    window = 4.0
    async with FakeSlack(window_seconds=window) as slack:
        outboxes = [
            SlackOutbox(client_of(slack), limiter=limiter, team_id=TEAM, window_s=window)
            for limiter in (SqlRateLimiter(database.engine), second_engine)
        ]
        await push_updates(slack, outboxes, per_outbox=30)
        updates = slack.calls_to("chat.update")
        assert slack.rate_limited == []
        assert len(updates) == 60
        assert {call.params["text"] for call in updates} == {"edited by 0", "edited by 1"}
        # Together inside Slack's Tier 3 (the fake's 50 per window), in every window.
        assert most_in_a_window(updates, window) <= slack.limits["chat.update"]


async def test_two_processes_counting_for_themselves_are_rate_limited() -> None:
    """The same two processes, each with a budget of its own: Slack answers 429s (so the
    shared test above can fail), which the SDK retries after Retry-After."""
    window = 2.0
    async with FakeSlack(window_seconds=window) as slack:
        outboxes = [
            SlackOutbox(
                client_of(slack), limiter=MemoryRateLimiter(), team_id=TEAM, window_s=window
            )
            for _ in range(2)
        ]
        await push_updates(slack, outboxes, per_outbox=50)
        assert slack.rate_limited
        assert {method for method, _ in slack.rate_limited} == {"chat.update"}


# ---------------------------------------------------------------- errors and retries


def test_the_sdks_retry_handlers_are_installed_once() -> None:
    client = AsyncWebClient(token="xoxb-test")
    SlackOutbox(client)
    SlackOutbox(client)  # a second outbox on the same client adds nothing
    handlers = client.retry_handlers
    assert sum(isinstance(h, AsyncRateLimitErrorRetryHandler) for h in handlers) == 1
    assert sum(isinstance(h, AsyncServerErrorRetryHandler) for h in handlers) == 1


async def test_a_429_is_retried_after_retry_after(slack: FakeSlack) -> None:
    outbox = SlackOutbox(client_of(slack), team_id=TEAM)
    channel = await group_dm(outbox)
    ts = await posted(outbox, channel)
    slack.fail_next("chat.update", "ratelimited", retry_after=1)
    await outbox.update(channel, ts, text="after the 429")
    assert slack.message(channel, ts).text == "after the 429"
    refused, retried = slack.calls_to("chat.update")
    assert retried.at - refused.at >= 1.0  # the fake's clock: Retry-After was honoured
    await outbox.close()


@pytest.mark.parametrize("status", [500, 503])
async def test_a_server_error_is_retried(slack: FakeSlack, status: int) -> None:
    outbox = SlackOutbox(client_of(slack), team_id=TEAM)
    channel = await group_dm(outbox)
    slack.fail_next("chat.postMessage", "internal_error", status=status)
    await outbox.post(channel=channel, text="after the outage")
    assert [m.text for m in slack.channel_messages(channel)] == ["after the outage"]
    assert len(slack.calls_to("chat.postMessage")) == 2
    await outbox.close()


async def test_other_errors_reach_the_caller(slack: FakeSlack) -> None:
    outbox = SlackOutbox(client_of(slack), team_id=TEAM)
    with pytest.raises(SlackApiError) as caught:
        await outbox.post(channel="CNOPE", text="hi")
    assert caught.value.response["error"] == "channel_not_found"
    assert len(slack.calls_to("chat.postMessage")) == 1  # not retried
    await outbox.close()


class BrokenLimiter:
    async def acquire(self, key: str, per_second: float, burst: int) -> None:
        raise ConnectionError("the database is gone")

    async def try_acquire(self, key: str, per_second: float, burst: int) -> bool:
        raise ConnectionError("the database is gone")


async def test_a_failing_limiter_does_not_stop_the_messages(slack: FakeSlack) -> None:
    outbox = SlackOutbox(client_of(slack), limiter=BrokenLimiter(), team_id=TEAM)
    channel = await group_dm(outbox)
    ts = await posted(outbox, channel)
    await outbox.update(channel, ts, text="still edited")
    await outbox.flush()
    assert slack.message(channel, ts).text == "still edited"
    await outbox.close()
