"""Streamed replies: the first words at once, interim text only within the budget, the rest
with the end (Slack's ``chat.stopStream``); no network, a recording outbox."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from adapters.slack.platform import SlackReply
from core.text import MessageSplitter


class Outbox:
    """Records calls; ``free`` says whether a budget slot is free for ``try_call``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.free = True

    async def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.append((method, kwargs))
        return {"ts": "1.000001"}

    async def try_call(self, method: str, **kwargs: Any) -> dict[str, Any] | None:
        if not self.free:
            return None
        return await self.call(method, **kwargs)


def reply(outbox: Outbox) -> SlackReply:
    platform = SimpleNamespace(outbox=outbox, flush_interval_s=1.0, streaming_supported=True)
    return SlackReply(platform, "C1", "0.1", "U1", "T1")  # type: ignore[arg-type]


async def test_the_first_words_start_the_stream_before_the_line_is_complete() -> None:
    outbox = Outbox()
    streamed = reply(outbox)
    streamed.splitter.feed("Use a hash")
    assert await streamed.flush(final=False, footer=None)
    assert outbox.calls == [
        (
            "chat.startStream",
            {
                "channel": "C1",
                "thread_ts": "0.1",
                "markdown_text": "Use a hash",
                "recipient_user_id": "U1",
                "recipient_team_id": "T1",
            },
        )
    ]


async def test_interim_text_waits_for_a_free_slot_and_the_rest_goes_with_the_stop() -> None:
    outbox = Outbox()
    streamed = reply(outbox)
    streamed.splitter.feed("Use a hash")
    await streamed.flush(final=False, footer=None)
    streamed.splitter.feed(" map.\nThen")
    outbox.free = False  # every reply of the workspace shares the appends: none free now
    assert not await streamed.flush(final=False, footer=None)
    assert [m for m, _ in outbox.calls] == ["chat.startStream"]
    outbox.free = True
    assert await streamed.flush(final=False, footer=None)
    assert outbox.calls[-1] == (
        "chat.appendStream",
        {"channel": "C1", "ts": "1.000001", "markdown_text": " map.\nThen"},
    )
    streamed.splitter.feed(" one pass.")
    streamed.splitter.finish()
    assert await streamed.flush(final=True, footer="12 tokens this turn")
    method, args = outbox.calls[-1]
    assert method == "chat.stopStream" and args["markdown_text"] == " one pass."
    assert "12 tokens this turn" in str(args["blocks"])
    assert len(outbox.calls) == 3  # start, one append, stop


def test_commit_tail_commits_the_unfinished_line_but_not_a_fence_in_the_making() -> None:
    splitter = MessageSplitter(100)
    splitter.feed("Try this ``")
    splitter.commit_tail()
    assert splitter.segments == ["Try this "] and splitter.tail == "``"
    splitter.feed("`py\nx = 1\n```\nDone")
    splitter.commit_tail()
    assert splitter.finish() == ["Try this ```py\nx = 1\n```\nDone"]
