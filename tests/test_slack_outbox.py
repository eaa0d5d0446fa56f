"""The Slack outbox against the fake Web API: coalescing, pacing, 429 handling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.outbox import SlackOutbox, SlidingWindow
from tests.fakes.slack_server import FakeSlack


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(window_seconds=2.0) as fake:
        yield fake


async def posted(outbox: SlackOutbox, channel: str) -> str:
    return str((await outbox.post(channel=channel, text="v0"))["ts"])


async def test_updates_to_one_message_coalesce_to_the_latest_state(slack: FakeSlack) -> None:
    outbox = SlackOutbox(AsyncWebClient(token="xoxb-test", base_url=slack.api_url), window_s=2.0)
    channel = str((await outbox.call("conversations.open", users="U1,U2"))["channel"]["id"])
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
        await _urgent_first(slack)


async def _urgent_first(slack: FakeSlack) -> None:
    outbox = SlackOutbox(
        AsyncWebClient(token="xoxb-test", base_url=slack.api_url),
        window_s=0.5,
        limits={"chat.update": 1},
    )
    channel = str((await outbox.call("conversations.open", users="U1,U2"))["channel"]["id"])
    stamps = [await posted(outbox, channel) for _ in range(4)]
    for ts in stamps[:3]:
        outbox.update(channel, ts, text="routine")
    urgent = outbox.update(channel, stamps[3], text="final", urgent=True)
    await urgent
    edited = [call.params["ts"] for call in slack.calls_to("chat.update")]
    assert edited.index(stamps[3]) <= 1  # behind at most the edit already under way
    await outbox.flush()
    assert slack.rate_limited == []
    await outbox.close()


async def test_a_429_is_retried_after_retry_after(slack: FakeSlack) -> None:
    outbox = SlackOutbox(AsyncWebClient(token="xoxb-test", base_url=slack.api_url))
    channel = str((await outbox.call("conversations.open", users="U1,U2"))["channel"]["id"])
    ts = await posted(outbox, channel)
    slack.fail_next("chat.update", "ratelimited", retry_after=1)
    started = time.monotonic()
    await outbox.update(channel, ts, text="after the 429")
    assert time.monotonic() - started >= 1.0
    assert slack.message(channel, ts).text == "after the 429"
    assert len(slack.calls_to("chat.update")) == 2
    await outbox.close()


async def test_other_errors_reach_the_caller(slack: FakeSlack) -> None:
    outbox = SlackOutbox(AsyncWebClient(token="xoxb-test", base_url=slack.api_url))
    with pytest.raises(SlackApiError) as caught:
        await outbox.post(channel="CNOPE", text="hi")
    assert caught.value.response["error"] == "channel_not_found"
    await outbox.close()


async def test_posts_are_paced_per_channel() -> None:
    # Our bucket holds one message less than the server's: headroom for network jitter.
    async with FakeSlack(post_message_burst=4, post_message_rate=10.0) as slack:
        await _paced_posts(slack)


async def _paced_posts(slack: FakeSlack) -> None:
    outbox = SlackOutbox(
        AsyncWebClient(token="xoxb-test", base_url=slack.api_url), post_burst=3, post_rate=10.0
    )
    channel = str((await outbox.call("conversations.open", users="U1,U2"))["channel"]["id"])
    started = time.monotonic()
    await asyncio.gather(*(outbox.post(channel=channel, text=str(i)) for i in range(8)))
    assert time.monotonic() - started >= 0.45  # 3 at once, then 10 a second
    assert slack.rate_limited == []
    await outbox.close()


async def test_sliding_window_never_exceeds_its_limit() -> None:
    window = SlidingWindow(limit=5, window_s=0.3)
    stamps: list[float] = []
    for _ in range(12):
        await window.acquire()
        stamps.append(time.monotonic())
    for i in range(len(stamps) - 5):
        assert stamps[i + 5] - stamps[i] >= 0.3
