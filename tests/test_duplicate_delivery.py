"""Duplicate delivery and bursts (issue 11): however often a platform delivers a candidate's
message, it is answered once and charged once; 20 messages within a second are answered one at
a time, in order, within the budget.

Proven elsewhere (not repeated here):

* tests/test_slack.py::test_redelivered_events_produce_one_reply_and_one_charge: the same
  message in three envelopes (new event ids, ``X-Slack-Retry-Num`` 1 and 2);
* tests/test_slack.py::test_socket_mode_when_an_app_token_is_set: a Socket Mode redelivery
  (``retry_attempt`` 1) on the same connection;
* tests/test_discord.py::test_replayed_message_is_answered_once: MESSAGE_CREATE dispatched
  twice;
* tests/test_discord_sharding.py::test_an_event_both_processes_see_is_answered_and_charged_once
  and tests/test_multiprocess.py::test_discord_an_event_both_processes_see_is_answered_once:
  the same MESSAGE_CREATE seen by two bot processes;
* tests/test_multiprocess.py::test_two_processes_answer_each_message_once_in_order_within_budget
  and tests/test_service.py::test_concurrent_messages_are_serialised_in_order_and_never_overspend:
  concurrent messages answered one at a time, in order, within the budget (engine level).

Here: Slack's real retry (the same body, the same ``event_id``, ``X-Slack-Retry-Num`` 1 and 2)
and the same ``client_msg_id`` under another ``event_id``; Socket Mode redelivering after the
connection dropped; a Discord RESUME replaying a MESSAGE_CREATE the bot had handled, with one
it had missed; and the bursts.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from bench.fakes.slack_signing import (
    event_body,
    message_event,
    new_event_id,
    slash_command_body,
)
from core.models import EndReason, Interview, Status, Turn, TurnStatus
from tests.test_discord import DiscordWorld, discord_world
from tests.test_discord import open_interview as open_discord_interview
from tests.test_slack import CANDIDATE, INTERVIEWER, SlackWorld, slack_world
from tests.test_slack import open_interview as open_slack_interview

BURST = 20
# The per-candidate limit (CANDIDATE_MESSAGES_PER_MINUTE, 20 a minute by default) and the
# workspace's model calls are switched off here: the burst is about ordering and the budget.
NO_RATE_LIMITS: dict[str, Any] = {
    "candidate_messages_per_minute": 0,
    "workspace_llm_calls_per_minute": 0,
}
SETTLED = (TurnStatus.PENDING, TurnStatus.STREAMING)


def slack_replies(world: SlackWorld, channel: str, root_ts: str) -> list[Any]:
    """The bot's finished replies in the thread (each ends with its token line)."""
    return [
        m
        for m in world.slack.thread(channel, root_ts)[1:]
        if m.bot_id and "tokens this turn" in json.dumps([m.blocks, m.chunks, m.text])
    ]


async def settled(world: SlackWorld, interview_id: str, count: int) -> list[Turn]:
    async def done() -> bool:
        turns = await world.turns(interview_id)
        return len(turns) == count and all(t.status not in SETTLED for t in turns)

    await world.eventually(done)
    await world.settle()
    return await world.turns(interview_id)


async def assert_charged_once(world: SlackWorld | DiscordWorld, interview: Interview) -> Turn:
    stored = await world.service.queries.interview(interview.id)
    assert stored is not None
    async with world.service.ctx.uow() as uow:
        turns = await uow.interviews.list_turns(interview.id)
    (turn,) = turns
    assert turn.status is TurnStatus.ANSWERED and len(world.openai.requests) == 1
    assert stored.tokens_used == turn.charged_tokens > 0
    return turn


# ---------------------------------------------------------------------------- Slack


async def test_slack_retries_of_one_event_and_a_second_event_id_answer_once(
    tmp_path: Path,
) -> None:
    async with slack_world(tmp_path) as world:
        channel, root_ts, interview_id = await open_slack_interview(world)
        event = message_event(
            channel, CANDIDATE, "What is a hash map?", "1700005000.000100", thread_ts=root_ts
        )
        body = event_body(event, event_id="Ev0RETRY0001")
        # Slack's retries resend the very same body (same event_id) with a retry number
        for retry, reason in ((None, None), (1, "http_timeout"), (2, "http_error")):
            status, _ = await world.send(body, retry_num=retry, retry_reason=reason)
            assert status == 200
        # the same message (same client_msg_id and ts) in an envelope of its own
        status, _ = await world.send(event_body(event, event_id=new_event_id()))
        assert status == 200
        (turn,) = await settled(world, interview_id, 1)
        assert turn.platform_message_id == "1700005000.000100"
        (interview,) = await world.service.queries.open_interviews()
        await assert_charged_once(world, interview)
        assert len(slack_replies(world, channel, root_ts)) == 1
        assert len(world.slack.calls_to("chat.startStream")) == 1


async def test_socket_mode_redelivery_after_a_dropped_connection_answers_once(
    tmp_path: Path,
) -> None:
    async with slack_world(
        tmp_path, slack_app_token="xapp-test", slack_signing_secret=None
    ) as world:
        slack = world.slack
        await slack.wait_socket()
        interview = await start_over_socket(world)
        channel, root_ts = interview.platform_data["channel"], interview.platform_data["thread_ts"]
        event = json.loads(
            event_body(
                message_event(channel, CANDIDATE, "hi", "1700005100.000100", thread_ts=root_ts),
                event_id="Ev0SOCKET001",
            )
        )
        await slack.socket_send("events_api", event)
        # the connection drops before Slack saw the ack: it redelivers on the next one
        await slack.drop_sockets()
        await slack.wait_socket(connections=2)
        await world.eventually(lambda: _socket_open(world))
        await slack.socket_send("events_api", event, retry_attempt=1, retry_reason="timeout")
        await slack.socket_send("events_api", event, retry_attempt=2, retry_reason="timeout")
        await settled(world, interview.id, 1)
        await assert_charged_once(world, interview)
        assert len(slack_replies(world, channel, root_ts)) == 1


async def _socket_open(world: SlackWorld) -> bool:
    return any(not s.closed for s in world.slack.sockets)


async def start_over_socket(world: SlackWorld) -> Interview:
    response_url = world.slack.new_response_url()
    command = dict(
        parse_qsl(
            slash_command_body(
                text=f"start <@{CANDIDATE}|alice> 30m 20k two-sum",
                user_id=INTERVIEWER,
                response_url=response_url,
            )
        )
    )
    await world.slack.socket_send("slash_commands", command)
    await world.settle()
    (interview,) = await world.service.queries.open_interviews()
    return interview


async def test_a_slack_burst_of_20_is_answered_in_order_one_at_a_time_within_budget(
    tmp_path: Path,
) -> None:
    """20 candidate messages within one second (rate limits off, see NO_RATE_LIMITS)."""
    async with slack_world(tmp_path, **NO_RATE_LIMITS) as world:
        budget = 5000
        channel, root_ts, interview_id = await open_slack_interview(
            world, f"start <@{CANDIDATE}|alice> 45m {budget} two-sum"
        )
        world.openai.replies.extend(f"Answer number {i}." for i in range(BURST))
        started = time.monotonic()
        await asyncio.gather(
            *(
                world.say(channel, root_ts, f"Question {i}?", f"1700005200.{i:06d}")
                for i in range(BURST)
            )
        )
        assert time.monotonic() - started < 1.0, "the burst took more than a second"
        turns = await settled(world, interview_id, BURST)
        interview = await world.interview(interview_id)
        assert_in_order_within_budget(world.openai.requests, turns, interview, budget)
        assert len(slack_replies(world, channel, root_ts)) == len(world.openai.requests)


def assert_in_order_within_budget(
    requests: list[dict[str, Any]], turns: list[Turn], interview: Interview, budget: int
) -> None:
    """Answered in arrival (``seq``) order, one at a time, never past the budget.

    Request k carries every earlier answered exchange, each reply complete: so it was made
    only after reply k-1 had finished streaming, and no two replies ever streamed at once.
    """
    turns = sorted(turns, key=lambda t: t.seq)
    answered = [t for t in turns if t.status is TurnStatus.ANSWERED]
    assert len(answered) >= 5 and len(requests) == len(answered)
    # the answered ones come first, in order; whatever the budget no longer held, after
    assert turns[: len(answered)] == answered
    assert all(
        t.status in (TurnStatus.REFUSED, TurnStatus.UNANSWERED) for t in turns[len(answered) :]
    )
    for k, (request, turn) in enumerate(zip(requests, answered, strict=True)):
        conversation = [(m["role"], m["content"]) for m in request["messages"][1:]]
        expected: list[tuple[str, str]] = []
        for earlier in answered[:k]:
            expected += [("user", earlier.content), ("assistant", earlier.reply)]
        assert conversation == [*expected, ("user", turn.content)], k
    assert interview.tokens_used == sum(t.charged_tokens for t in turns) <= budget
    assert interview.tokens_reserved == 0
    if len(answered) < len(turns):
        assert interview.status is Status.ENDED
        assert interview.end_reason is EndReason.TOKENS_EXHAUSTED


# ---------------------------------------------------------------------------- Discord


def discord_replies(world: DiscordWorld, interview: Interview) -> list[dict[str, Any]]:
    return [m for m in world.thread_messages(interview) if "tokens this turn" in m["content"]]


async def test_a_discord_resume_replaying_a_handled_message_answers_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with discord_world(tmp_path) as world:
        fake = world.discord
        interview = await open_discord_interview(world)
        thread = int(interview.platform_data["thread"])
        first = await fake.send_message(thread, world.candidate, "What is O(n)?")
        await world.turns_settled(interview, 1)
        await world.settle()
        # the gateway goes away; meanwhile the first message is sent again (Discord replays
        # around a resume) and the candidate writes a second one the bot has not seen
        await fake.take_gateway_down("close")
        await fake.wait_for(lambda: fake.refused_gateway_connections >= 1, timeout=10)
        monkeypatch.setattr(fake, "_require_client", lambda: None)  # buffered for the RESUME
        await fake.send_message(thread, world.candidate, "What is O(n)?", message_id=first)
        second = await fake.send_message(thread, world.candidate, "And O(log n)?")
        monkeypatch.undo()
        resumes = fake.resumes
        await fake.bring_gateway_up()
        await fake.wait_for(lambda: fake.resumes > resumes, timeout=15)
        await world.turns_settled(interview, 2)
        await world.settle()
        turns = await world.turns(interview)
        assert [t.platform_message_id for t in turns] == [str(first), str(second)]
        assert all(t.status is TurnStatus.ANSWERED for t in turns)
        assert len(world.openai.requests) == 2 and len(fake.identify_payloads) == 1
        assert len(discord_replies(world, interview)) == 2
        stored = await world.stored(interview)
        assert stored.tokens_used == sum(t.charged_tokens for t in turns)


async def test_a_discord_burst_of_20_is_answered_in_order_one_at_a_time_within_budget(
    tmp_path: Path,
) -> None:
    """20 candidate messages within one second (rate limits off, see NO_RATE_LIMITS; the
    fake's per-channel message limits too, so the replies need not wait for Discord)."""
    async with discord_world(tmp_path, **NO_RATE_LIMITS) as world:
        fake = world.discord
        for route in (
            "POST /channels/{channel_id}/messages",
            "PATCH /channels/{channel_id}/messages/{message_id}",
        ):
            fake.set_rate_limit(route, None)
        budget = 5000
        interview = await open_discord_interview(world, tokens=budget)
        thread = int(interview.platform_data["thread"])
        world.openai.replies.extend(f"Answer number {i}." for i in range(BURST))
        started = time.monotonic()
        for i in range(BURST):
            await fake.send_message(thread, world.candidate, f"Question {i}?")
        assert time.monotonic() - started < 1.0, "the burst took more than a second"
        await world.turns_settled(interview, BURST)
        await world.settle()
        turns = await world.turns(interview)
        stored = await world.stored(interview)
        assert_in_order_within_budget(world.openai.requests, turns, stored, budget)
        # arrival order is the order the candidate wrote in
        assert [t.content for t in sorted(turns, key=lambda t: t.seq)] == [
            f"Question {i}?" for i in range(BURST)
        ]
        assert len(discord_replies(world, interview)) == len(world.openai.requests)
