"""Crashes and clean shutdowns of a real ``interview-buddy run`` process (issue 11).

One bot process at a time, on PostgreSQL when ``TEST_DATABASE_URL`` is set (else an SQLite
file), serving a fake Slack over HTTP and talking to a fake OpenAI. It is SIGKILLed while a
reply streams (20 times, at random moments), while idle, and between the end of a session
and its report, and restarted each time; and it is stopped with SIGTERM while a reply
streams and while a report is being built. What must hold afterwards is read from the
database and from the fake Slack.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa

from bench.fakes.openai_server import FILLER, FakeOpenAI
from bench.fakes.processes import BotProcess, free_port, fresh_pg_database
from bench.fakes.slack_server import FakeMessage, FakeSlack
from bench.fakes.slack_signing import event_body, message_event, signed_headers, slash_command_body
from core import texts
from core.models import Interview, Status, Turn, TurnStatus
from core.tokens import TokenCounter
from storage import UnitOfWorkFactory, create_uow_factory
from tests.fakes.judge_answers import valid_answer

pytestmark = pytest.mark.slow

PG_URL = os.environ.get("TEST_DATABASE_URL")
SECRET = "crash-recovery-secret"
INTERVIEWER = "UINTVW01"
CANDIDATE = "UCANDI01"
SECOND_CANDIDATE = "UCANDI02"
MODEL = "gpt-4o-mini"
READY = "INFO bot.app: ready"
FOOTER = "tokens this turn"
RESEND = "please send it again"
ROUNDS = 20
# Short leases and sweeps keep each crash round to a few seconds.
FAST = {"TURN_LEASE_S": "2", "JOB_SWEEP_S": "0.5", "LLM_MAX_RETRIES": "0"}


@pytest_asyncio.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh PostgreSQL database when TEST_DATABASE_URL is set, else an SQLite file."""
    if not PG_URL:
        yield f"sqlite+aiosqlite:///{tmp_path}/crash.db"
        return
    async with fresh_pg_database(PG_URL, "ib_crash") as url:
        yield url


@dataclass
class Rig:
    """The fakes, the database and the one bot process of a test (restarted at will)."""

    tmp_path: Path
    url: str
    slack: FakeSlack
    openai: FakeOpenAI
    http: aiohttp.ClientSession
    env: dict[str, str]
    bot: BotProcess | None = None
    port: int = 0
    everyone: list[BotProcess] = field(default_factory=list)
    _db: UnitOfWorkFactory | None = None

    @property
    def db(self) -> UnitOfWorkFactory:
        if self._db is None:  # after the first bot applied the migrations (SQLite)
            self._db = create_uow_factory(self.url)
        return self._db

    async def start(self, **env: str) -> BotProcess:
        self.port = free_port()
        bot = await BotProcess.start(
            self.tmp_path,
            "run",
            DATABASE_URL=self.url,
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=self.slack.api_url,
            SLACK_INTERVIEWERS=INTERVIEWER,
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=self.openai.base_url,
            LLM_MODEL=MODEL,
            HTTP_PORT=str(self.port),
            LOG_LEVEL="INFO",
            **{**self.env, **env},
        )
        self.bot = bot
        self.everyone.append(bot)
        await bot.wait_for_line(READY, timeout=60)
        return bot

    async def kill(self) -> None:
        assert self.bot is not None
        await self.bot.kill()

    async def send(self, body: str) -> int:
        url = f"http://127.0.0.1:{self.port}/slack/events"
        async with self.http.post(url, data=body, headers=signed_headers(SECRET, body)) as r:
            return r.status

    async def healthz(self) -> int:
        async with self.http.get(f"http://127.0.0.1:{self.port}/healthz") as r:
            return r.status

    async def command(self, text: str) -> str:
        response_url = self.slack.new_response_url()
        body = slash_command_body(text=text, user_id=INTERVIEWER, response_url=response_url)
        assert await self.send(body) == 200
        rid = response_url.rsplit("/", 1)[1]
        await until(lambda: bool(self.slack.responses.get(rid)))
        return str(self.slack.responses[rid][-1]["text"])

    async def open_interview(self, candidate: str, limits: str) -> tuple[Interview, str, str]:
        reply = await self.command(f"start <@{candidate}|someone> {limits} two-sum")
        assert reply.startswith("Started"), reply
        async with self.db() as uow:
            found = [i for i in await uow.interviews.list_open() if i.candidate_id == candidate]
        (interview,) = found
        return interview, interview.platform_data["channel"], interview.platform_data["thread_ts"]

    async def say(
        self, channel: str, thread: str, text: str, *, user: str = CANDIDATE
    ) -> FakeMessage:
        """The candidate writes in the thread (it is in Slack) and Slack delivers the event."""
        written = self.slack.add_message(channel, text, user=user, thread_ts=thread)
        body = event_body(message_event(channel, user, text, written.ts, thread_ts=thread))
        assert await self.send(body) == 200
        return written

    async def turns(self, interview_id: str) -> list[Turn]:
        async with self.db() as uow:
            return await uow.interviews.list_turns(interview_id)

    async def stored(self, interview_id: str) -> Interview:
        async with self.db() as uow:
            found = await uow.interviews.get(interview_id)
        assert found is not None
        return found

    async def turn_for(self, interview_id: str, message_ts: str) -> Turn | None:
        found = [t for t in await self.turns(interview_id) if t.platform_message_id == message_ts]
        assert len(found) <= 1
        return found[0] if found else None

    async def rows(self, query: str, **params: Any) -> list[dict[str, Any]]:
        async with self.db.engine.connect() as conn:
            result = await conn.execute(sa.text(query), params)
            return [dict(row) for row in result.mappings()]

    def bot_messages(self, channel: str, thread: str) -> list[FakeMessage]:
        return [m for m in self.slack.thread(channel, thread) if m.bot_id and m.ts != thread]


@pytest_asyncio.fixture
async def rig(database_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with FakeSlack() as slack, FakeOpenAI(tokens_per_chunk=3) as openai:
        for user, name in ((INTERVIEWER, "ivy"), (CANDIDATE, "alice"), (SECOND_CANDIDATE, "bo")):
            slack.add_user(user, name=name)
        async with aiohttp.ClientSession() as http:
            world = Rig(tmp_path, database_url, slack, openai, http, dict(FAST))
            try:
                yield world
            finally:
                for bot in world.everyone:
                    await bot.kill()
                if world._db is not None:
                    await world._db.close()


async def until(condition: Callable[[], bool], limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def eventually(check: Callable[[], Any], limit_s: float = 30.0, every_s: float = 0.1) -> None:
    """Wait until the coroutine function ``check`` returns something true."""
    deadline = time.monotonic() + limit_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(every_s)


def is_reply(message: FakeMessage) -> bool:
    """A finished model reply: it carries the per-turn token footer (see test_slack.py)."""
    return FOOTER in json.dumps(message.blocks or message.chunks or [])


def long_reply(label: str) -> str:
    """About 380 tokens: at 3 tokens and 12 ms a chunk it streams for 1.5 s at least."""
    return f"{label}: " + FILLER * 25


def usage_of(request: dict[str, Any], reply: str) -> tuple[int, int]:
    """The usage the fake OpenAI reports for ``request`` answered with ``reply``."""
    counter = TokenCounter(request["model"])
    messages = [
        {k: v for k, v in m.items() if k in ("role", "content")} for m in request["messages"]
    ]
    completion = len(counter.encode(reply))
    limit = request.get("max_completion_tokens", request.get("max_tokens"))
    return counter.count_messages(messages), min(completion, limit or completion)


def deadline_shown(message: FakeMessage) -> int:
    """The "ends at" moment the Slack counter shows (a ``<!date^unix^…>`` token)."""
    found = re.search(r"<!date\^(\d+)\^", json.dumps(message.blocks))
    assert found, message.blocks
    return int(found.group(1))


# ---------------------------------------------------------------------- crashes


async def crash_round(
    rig: Rig, interview: Interview, n: int, delay_s: float
) -> tuple[FakeMessage, TurnStatus, float]:
    """The candidate asks; ``delay_s`` after the call reached the API the bot is SIGKILLed
    and restarted; returns the message, its turn's status at the kill, and how long after
    the kill the turn was recovered (marked, reservation released, candidate told)."""
    channel, thread = interview.platform_data["channel"], interview.platform_data["thread_ts"]
    rig.openai.replies.append(long_reply(f"Answer {n}"))
    calls = len(rig.openai.requests)
    message = await rig.say(channel, thread, f"question {n}: what about case {n}?")
    await until(lambda: len(rig.openai.requests) > calls)  # the call reached the API
    await asyncio.sleep(delay_s)  # somewhere in the stream
    await rig.kill()
    killed = time.monotonic()
    turn = await rig.turn_for(interview.id, message.ts)
    assert turn is not None
    await rig.start()

    async def recovered() -> bool:
        turn = await rig.turn_for(interview.id, message.ts)
        stored = await rig.stored(interview.id)
        settled = turn is not None and turn.status is TurnStatus.FAILED
        return settled and stored.tokens_reserved == 0

    await eventually(recovered)
    await until(lambda: sum(RESEND in m.text for m in rig.bot_messages(channel, thread)) > n)
    return message, turn.status, time.monotonic() - killed


async def test_sigkill_while_replies_stream_loses_and_doubles_nothing(rig: Rig) -> None:
    """The issue's measurement: SIGKILL at a random moment of a streaming reply, restart,
    20 times in a row. Every message is stored once, no reply is posted twice, each cut-off
    turn is marked and the candidate asked to resend, and the charges add up."""
    rng = random.Random(20261101)
    rig.openai.chunk_delay = 0.012
    await rig.start()
    interview, channel, thread = await rig.open_interview(CANDIDATE, "30m 200k")
    sent: list[FakeMessage] = []
    at_kill: list[TurnStatus] = []
    recovery_s: list[float] = []
    round_s: list[float] = []
    for n in range(ROUNDS):
        began = time.monotonic()
        message, status, recovered_s = await crash_round(rig, interview, n, rng.uniform(0.05, 1.3))
        sent.append(message)
        at_kill.append(status)
        recovery_s.append(recovered_s)
        round_s.append(time.monotonic() - began)

    # The interview goes on: the next message is answered once, with its footer.
    rig.openai.chunk_delay = 0.0
    rig.openai.replies.append(f"Answer {ROUNDS}: all good.")
    sent.append(await rig.say(channel, thread, "question after the crashes"))

    async def answered() -> bool:
        turn = await rig.turn_for(interview.id, sent[-1].ts)
        return turn is not None and turn.status is TurnStatus.ANSWERED

    await eventually(answered)
    await until(lambda: any(is_reply(m) for m in rig.bot_messages(channel, thread)))
    await asyncio.sleep(1.0)  # time for anything doubled to show up

    turns = await rig.turns(interview.id)
    stored = await rig.stored(interview.id)
    by_message = {t.platform_message_id: t for t in turns}
    losses = len(sent) - len({m.ts for m in sent} & set(by_message))
    bot_messages = rig.bot_messages(channel, thread)
    shown = [sum(f"Answer {n}:" in m.text for m in bot_messages) for n in range(ROUNDS + 1)]
    doubles = sum(max(0, count - 1) for count in shown)
    replies = [m for m in bot_messages if is_reply(m)]
    notices = [m for m in bot_messages if RESEND in m.text]
    interrupted = [t for t in turns if t.status is TurnStatus.FAILED]
    marked = [t for t in interrupted if t.error == "interrupted by a restart"]
    print(
        f"\ncrash rounds: {ROUNDS}; streaming at the kill: "
        f"{sum(s is TurnStatus.STREAMING for s in at_kill)}; losses: {losses}; "
        f"doubles: {doubles}; interrupted turns marked: {len(marked)}; "
        f"resend notices: {len(notices)}; recovery after the kill: "
        f"mean {statistics.mean(recovery_s):.1f} s, max {max(recovery_s):.1f} s; "
        f"round: mean {statistics.mean(round_s):.1f} s"
    )
    assert (losses, doubles) == (0, 0)
    assert len(turns) == len(sent) == ROUNDS + 1
    assert at_kill == [TurnStatus.STREAMING] * ROUNDS  # every kill was mid-reply
    assert len(marked) == len(interrupted) == ROUNDS and len(notices) == ROUNDS
    assert [is_reply(m) for m in replies] == [True]  # only the last turn finished
    assert f"Answer {ROUNDS}:" in replies[0].text
    # One model call per message: a turn cut off by a crash is not sent again.
    assert len(rig.openai.requests) == ROUNDS + 1
    # Charges: a cut-off turn is charged the prompt the API received (the usage counts it
    # whatever happens next); the finished one exactly what the API reported.
    for turn, request in zip(turns, rig.openai.requests, strict=True):
        assert request["messages"][-1]["content"] == turn.content
        prompt, completion = usage_of(request, turn.reply or "")
        if turn.status is TurnStatus.FAILED:
            assert turn.charged_tokens == turn.prompt_tokens == prompt
        else:
            assert turn.status is TurnStatus.ANSWERED
            assert (turn.prompt_tokens, turn.completion_tokens) == (prompt, completion)
            assert turn.charged_tokens == prompt + completion
    assert stored.tokens_used == sum(t.charged_tokens for t in turns)
    assert stored.tokens_reserved == 0 and stored.status is Status.ACTIVE


async def test_sigkill_while_idle_keeps_the_deadline_and_the_counter_goes_on(rig: Rig) -> None:
    await rig.start()
    interview, channel, thread = await rig.open_interview(CANDIDATE, "30m 20k")
    assert (await rig.command(f"extend <@{CANDIDATE}|alice> +5m")).startswith("Extended")
    rig.openai.replies.append("Start with a hash map.")
    first = await rig.say(channel, thread, "How do I start?")

    async def answered() -> bool:
        turn = await rig.turn_for(interview.id, first.ts)
        return turn is not None and turn.status is TurnStatus.ANSWERED

    await eventually(answered)
    await until(lambda: any(is_reply(m) for m in rig.bot_messages(channel, thread)))
    before = await rig.stored(interview.id)
    assert before.extra_time_s == 300
    extended = before.deadline(before.created_at)
    assert extended is not None
    # The extension's redraw waits for its Tier-3 slot (about 1.2 s after the start's).
    await until(
        lambda: deadline_shown(rig.slack.message(channel, thread)) == int(extended.timestamp())
    )
    shown_before = deadline_shown(rig.slack.message(channel, thread))
    await rig.kill()  # idle: nothing streams, nothing is being answered

    # The counter's next refresh came due while the bot was down.
    async with rig.db.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE jobs SET due_at = :now WHERE key = :key"),
            {"now": datetime.now(UTC), "key": f"tick:{interview.id}"},
        )
    updates = len(rig.slack.calls_to("chat.update"))
    await rig.start()
    await until(
        lambda: any(
            c.params.get("ts") == thread for c in rig.slack.calls_to("chat.update")[updates:]
        )
    )
    after = await rig.stored(interview.id)
    assert after.status is Status.ACTIVE
    same = ("started_at", "time_limit_s", "extra_time_s", "paused_total_s", "paused_since")
    assert {k: getattr(after, k) for k in same} == {k: getattr(before, k) for k in same}
    assert after.tokens_used == before.tokens_used and after.tokens_reserved == 0
    assert after.deadline(after.created_at) == before.deadline(before.created_at)
    assert deadline_shown(rig.slack.message(channel, thread)) == shown_before
    (tick,) = await rig.rows(
        "SELECT due_at, done_at FROM jobs WHERE key = :key", key=f"tick:{interview.id}"
    )
    assert tick["done_at"] is None  # the tick is armed again (the next refresh)

    rig.openai.replies.append("Then check the complement.")
    second = await rig.say(channel, thread, "And then?")

    async def answered_again() -> bool:
        turn = await rig.turn_for(interview.id, second.ts)
        return turn is not None and turn.status is TurnStatus.ANSWERED

    await eventually(answered_again)
    await until(lambda: sum(is_reply(m) for m in rig.bot_messages(channel, thread)) == 2)
    assert not any(RESEND in m.text for m in rig.bot_messages(channel, thread))


def report_messages(rig: Rig) -> tuple[list[FakeMessage], list[str]]:
    """The report (a DM to the interviewer: no channel is configured) and its files."""
    dm = rig.slack.conversation_with(INTERVIEWER)
    if dm is None:
        return [], []
    messages = rig.slack.channel_messages(dm, include_replies=True)
    reports = [m for m in messages if "Interview report" in m.text]
    files = [rig.slack.files[f].filename for m in messages for f in m.files]
    return reports, files


def judge_requests(rig: Rig) -> list[dict[str, Any]]:
    return [r for r in rig.openai.requests if "response_format" in r]


async def test_sigkill_between_the_end_and_the_report_delivers_it_once(rig: Rig) -> None:
    """Killed while the judge evaluates, then again while the report's files upload: the
    report is built, posted and attached once. A killed process's job claims expire after
    JOB_CLAIM_S (3 s here)."""
    rig.env["JOB_CLAIM_S"] = "3"
    rig.openai.structured_default = valid_answer
    await rig.start()
    interview, channel, thread = await rig.open_interview(CANDIDATE, "30m 20k")
    first = await rig.say(channel, thread, "How do I start?")

    async def answered() -> bool:
        turn = await rig.turn_for(interview.id, first.ts)
        return turn is not None and turn.status is TurnStatus.ANSWERED

    await eventually(answered)
    rig.openai.slow_first_byte(60)  # the next request: the judge's
    assert (await rig.command(f"end <@{CANDIDATE}|alice>")).startswith("Ended")
    await until(lambda: len(judge_requests(rig)) == 1)
    await rig.kill()  # 1: while the evaluation is under way

    rig.slack.hold("files.getUploadURLExternal")
    await rig.start()
    await until(lambda: len(report_messages(rig)[0]) == 1)
    await until(lambda: bool(rig.slack.calls_to("files.getUploadURLExternal")))
    await rig.kill()  # 2: the report is posted, its files are not attached yet
    rig.slack.release("files.getUploadURLExternal")
    assert report_messages(rig)[1] == []

    await rig.start()
    await until(lambda: len(report_messages(rig)[1]) == 2)
    await asyncio.sleep(2)  # several sweeps: anything sent twice would show up now
    reports, files = report_messages(rig)
    assert len(reports) == 1 and sorted(files) == sorted(set(files)) and len(files) == 2
    assert len(judge_requests(rig)) == 2  # the first answer never arrived
    async with rig.db() as uow:
        report = await uow.reports.for_interview(interview.id)
    assert report is not None and report.delivered_at is not None
    assert report.evaluation is not None
    (evaluate,) = await rig.rows(
        "SELECT done_at FROM jobs WHERE key = :k", k=f"evaluate:{interview.id}"
    )
    assert evaluate["done_at"] is not None


# ---------------------------------------------------------------------- SIGTERM


async def test_sigterm_lets_a_reply_that_fits_in_the_grace_finish(rig: Rig) -> None:
    await rig.start()  # SHUTDOWN_GRACE: the default 20 s
    interview, channel, thread = await rig.open_interview(CANDIDATE, "30m 20k")
    rig.openai.chunk_delay = 0.015
    rig.openai.replies.append(long_reply("Answer"))  # about 2 s
    message = await rig.say(channel, thread, "Explain it all.")
    await until(lambda: bool(rig.openai.requests))
    await asyncio.sleep(0.3)
    assert rig.bot is not None
    bot = rig.bot
    asked = time.monotonic()
    bot.terminate()
    assert await bot.exit_code(timeout=25) == 0
    took = time.monotonic() - asked
    turn = await rig.turn_for(interview.id, message.ts)
    assert turn is not None and turn.status is TurnStatus.ANSWERED, turn
    assert took < 10, took  # it waited for the reply, not for the whole grace
    (reply,) = [m for m in rig.bot_messages(channel, thread) if is_reply(m)]
    assert "Answer:" in reply.text
    assert await rig.rows("SELECT * FROM leases") == []


async def test_sigterm_interrupts_what_outlasts_the_grace_and_hands_it_over(rig: Rig) -> None:
    """SIGTERM with SHUTDOWN_GRACE=2 while a reply streams (it needs ~10 s more) and while a
    report is being built (the judge is slow): new requests get 503, the process exits 0
    within the grace, the reply is recorded as interrupted and charged what arrived, the
    lease and the job claim are gone, and the next process goes on at once (no claim or
    lease to wait out: JOB_CLAIM_S stays 60 s)."""
    grace = 2.0
    rig.openai.structured_default = valid_answer
    await rig.start(SHUTDOWN_GRACE=str(grace))
    ended, _, _ = await rig.open_interview(SECOND_CANDIDATE, "30m 20k")
    interview, channel, thread = await rig.open_interview(CANDIDATE, "30m 20k")
    rig.openai.slow_first_byte(60)  # the next request: the judge's
    assert (await rig.command(f"end <@{SECOND_CANDIDATE}|bo>")).startswith("Ended")
    await until(lambda: len(judge_requests(rig)) == 1)
    rig.openai.chunk_delay = 0.05
    rig.openai.replies.append(long_reply("Answer"))  # 6 s at least
    message = await rig.say(channel, thread, "Explain it all.")
    await until(lambda: len(rig.openai.requests) == 2)
    await until(lambda: any("Answer:" in m.text for m in rig.bot_messages(channel, thread)))
    claimed = await rig.rows(
        "SELECT key, claimed_by FROM jobs WHERE claimed_by IS NOT NULL AND key = :key",
        key=f"evaluate:{ended.id}",
    )
    assert len(claimed) == 1  # the evaluation under way holds its job
    owner = claimed[0]["claimed_by"]
    assert [r["owner"] for r in await rig.rows("SELECT owner FROM leases")] == [owner]

    assert rig.bot is not None
    bot = rig.bot
    asked = time.monotonic()
    bot.terminate()
    await bot.wait_for_line("stopping")
    # Draining: no new work is taken; the load balancer (or Slack's retry) goes elsewhere.
    late = event_body(
        message_event(channel, CANDIDATE, "one more", "1700000999.000001", thread_ts=thread)
    )
    assert await rig.send(late) == 503
    assert await rig.healthz() == 503
    assert await bot.exit_code(timeout=grace + 10) == 0
    took = time.monotonic() - asked
    assert took < grace + 1.5, took

    turn = await rig.turn_for(interview.id, message.ts)
    assert turn is not None and turn.status is TurnStatus.FAILED
    assert turn.error == texts.INTERRUPTED
    assert turn.reply.startswith("Answer:") and len(turn.reply) < len(long_reply("Answer"))
    counter = TokenCounter(MODEL)
    assert turn.charged_tokens == turn.prompt_tokens + counter.count_text(turn.reply)
    stored = await rig.stored(interview.id)
    assert stored.tokens_reserved == 0 and stored.tokens_used == turn.charged_tokens
    assert await rig.rows("SELECT * FROM leases") == []
    assert await rig.rows("SELECT key FROM jobs WHERE claimed_by IS NOT NULL") == []
    assert "job claim(s)" in bot.output and "1 job claim(s)" in bot.output
    # The candidate saw the reply stop and was asked to send the message again.
    cut = [m for m in rig.bot_messages(channel, thread) if "Answer:" in m.text]
    assert len(cut) == 1 and not cut[0].streaming
    assert texts.INTERRUPTED in json.dumps(cut[0].blocks)
    assert sum(RESEND in m.text for m in rig.bot_messages(channel, thread)) == 1

    # The next process takes over at once: the report is built and sent (no 60 s claim to
    # wait out), and the candidate's resent message is answered.
    rig.openai.chunk_delay = 0.0
    restarted = time.monotonic()
    await rig.start()
    rig.openai.replies.append("Answer again: short this time.")
    again = await rig.say(channel, thread, "Explain it all.")

    async def answered() -> bool:
        turn = await rig.turn_for(interview.id, again.ts)
        return turn is not None and turn.status is TurnStatus.ANSWERED

    await eventually(answered)
    await until(lambda: len(report_messages(rig)[1]) == 2)
    assert time.monotonic() - restarted < 20
    reports, _ = report_messages(rig)
    assert len(reports) == 1 and len(judge_requests(rig)) == 2
    assert sum(is_reply(m) for m in rig.bot_messages(channel, thread)) == 1
