"""Two real ``interview-buddy run`` processes on one PostgreSQL, both serving one Slack
workspace over HTTP (as behind a load balancer), against the project's fakes."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa

from bench.fakes.discord_server import FakeDiscord
from bench.fakes.openai_server import FakeOpenAI
from bench.fakes.processes import BotProcess, free_port, fresh_pg_database
from bench.fakes.slack_server import FakeSlack
from bench.fakes.slack_signing import event_body, message_event, signed_headers, slash_command_body
from core.models import EndReason, Interview, Status, Turn, TurnStatus
from storage import UnitOfWorkFactory, create_uow_factory
from tests.fakes.judge_answers import valid_answer

pytestmark = pytest.mark.slow

PG_URL = os.environ.get("TEST_DATABASE_URL")
SECRET = "multi-process-secret"
INTERVIEWER = "UINTVW01"
CANDIDATE = "UCANDI01"


@pytest_asyncio.fixture
async def pg_database() -> AsyncIterator[str]:
    """A PostgreSQL database of its own (the bots connect to it by URL)."""
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set; two processes need PostgreSQL")
    async with fresh_pg_database(PG_URL, "ib_mp") as url:
        yield url


@dataclass
class Cluster:
    slack: FakeSlack
    openai: FakeOpenAI
    bots: list[BotProcess]
    ports: list[int]
    db: UnitOfWorkFactory
    http: aiohttp.ClientSession
    start_bot: Callable[[], Awaitable[int]]

    async def send(self, index: int, body: str) -> int:
        url = f"http://127.0.0.1:{self.ports[index]}/slack/events"
        async with self.http.post(url, data=body, headers=signed_headers(SECRET, body)) as r:
            return r.status

    async def command(self, index: int, text: str) -> list[dict[str, Any]]:
        response_url = self.slack.new_response_url()
        body = slash_command_body(text=text, user_id=INTERVIEWER, response_url=response_url)
        assert await self.send(index, body) == 200
        rid = response_url.rsplit("/", 1)[1]
        await self.until(lambda: bool(self.slack.responses.get(rid)))
        return self.slack.responses[rid]

    async def say(self, index: int, channel: str, thread_ts: str, text: str, ts: str) -> None:
        body = event_body(message_event(channel, CANDIDATE, text, ts, thread_ts=thread_ts))
        assert await self.send(index, body) == 200

    async def until(self, condition: Callable[[], bool], limit_s: float = 60.0) -> None:
        deadline = time.monotonic() + limit_s
        while not condition():
            assert time.monotonic() < deadline, "condition not reached"
            await asyncio.sleep(0.05)

    async def interview(self) -> Interview:
        async with self.db() as uow:
            (found,) = await uow.interviews.list_open()
        return found

    async def turns(self, interview_id: str) -> list[Turn]:
        async with self.db() as uow:
            return await uow.interviews.list_turns(interview_id)

    async def stored(self, interview_id: str) -> Interview:
        async with self.db() as uow:
            found = await uow.interviews.get(interview_id)
        assert found is not None
        return found


@pytest_asyncio.fixture
async def cluster(pg_database: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with FakeSlack() as slack, FakeOpenAI(tokens_per_chunk=3, chunk_delay=0.02) as openai:
        slack.add_user(INTERVIEWER, name="ivy")
        slack.add_user(CANDIDATE, name="alice")
        bots: list[BotProcess] = []
        ports: list[int] = []

        async def start_bot() -> int:
            port = free_port()
            bot = await BotProcess.start(
                tmp_path,
                "run",
                DATABASE_URL=pg_database,
                SLACK_BOT_TOKEN="xoxb-test",
                SLACK_SIGNING_SECRET=SECRET,
                SLACK_API_URL=slack.api_url,
                SLACK_INTERVIEWERS=INTERVIEWER,
                OPENAI_API_KEY="sk-test",
                OPENAI_BASE_URL=openai.base_url,
                LLM_MAX_RETRIES="0",
                HTTP_PORT=str(port),
                TURN_LEASE_S="3",
                JOB_SWEEP_S="0.5",
                LOG_LEVEL="INFO",
            )
            bots.append(bot)
            ports.append(port)
            await bot.wait_for_line("INFO bot.app: ready")
            return len(bots) - 1

        db = create_uow_factory(pg_database)
        async with aiohttp.ClientSession() as http:
            world = Cluster(slack, openai, bots, ports, db, http, start_bot)
            try:
                await asyncio.gather(start_bot(), start_bot())
                yield world
            finally:
                for bot in bots:
                    await bot.kill()
                await db.close()


async def open_interview(cluster: Cluster, text: str) -> tuple[Interview, str, str]:
    replies = await cluster.command(0, text)
    assert replies[-1]["text"].startswith("Started"), replies
    interview = await cluster.interview()
    return interview, interview.platform_data["channel"], interview.platform_data["thread_ts"]


async def test_two_processes_answer_each_message_once_in_order_within_budget(
    cluster: Cluster,
) -> None:
    """The issue's measurement (5,352 tokens billed on a 3,000 budget): ten messages 0.25 s
    apart, alternately to each process."""
    interview, channel, thread = await open_interview(
        cluster, f"start <@{CANDIDATE}|alice> 30m 3000 two-sum"
    )
    for i in range(10):
        await cluster.say(i % 2, channel, thread, f"question {i}", f"1700000100.{i:06d}")
        await asyncio.sleep(0.25)

    async def settled() -> bool:
        turns = await cluster.turns(interview.id)
        stored = await cluster.stored(interview.id)
        done = all(t.status not in (TurnStatus.PENDING, TurnStatus.STREAMING) for t in turns)
        return len(turns) == 10 and done and stored.tokens_reserved == 0

    deadline = time.monotonic() + 90
    while not await settled():
        assert time.monotonic() < deadline, await cluster.turns(interview.id)
        await asyncio.sleep(0.2)
    turns = await cluster.turns(interview.id)
    stored = await cluster.stored(interview.id)
    billed = sum(t.charged_tokens for t in turns)
    assert stored.tokens_used == billed <= 3000
    answered = [t for t in turns if t.status is TurnStatus.ANSWERED]
    assert len(answered) >= 2 and len(cluster.openai.requests) == len(answered)
    for earlier, later in itertools.pairwise(answered):  # one at a time, in arrival order
        assert later.prompt_tokens > earlier.prompt_tokens + earlier.completion_tokens - 1
    replies = [
        m
        for m in cluster.slack.thread(channel, thread)
        if "tokens this turn" in json.dumps(m.blocks or m.chunks or [])
    ]
    assert len(replies) == len(answered)  # one reply per answer, none doubled
    assert cluster.slack.rate_limited == []


async def test_an_idle_interview_is_closed_once_at_its_deadline(cluster: Cluster) -> None:
    interview, channel, thread = await open_interview(
        cluster, f"start <@{CANDIDATE}|alice> 1m 20k two-sum"
    )
    # Move the deadline close: as if the interview had started 58 s ago.
    async with cluster.db.engine.begin() as conn:
        started = datetime.now(UTC) - timedelta(seconds=58)
        await conn.execute(
            sa.text("UPDATE interviews SET started_at = :s WHERE id = :i"),
            {"s": started, "i": interview.id},
        )
        await conn.execute(
            sa.text("UPDATE jobs SET due_at = :d WHERE key = :k"),
            {"d": started + timedelta(seconds=60), "k": f"tick:{interview.id}"},
        )
    await cluster.until(
        lambda: any(m.text.startswith("🏁") for m in cluster.slack.thread(channel, thread))
    )
    await asyncio.sleep(2)  # both processes sweep several times meanwhile
    notes = [m for m in cluster.slack.thread(channel, thread) if m.text.startswith("🏁")]
    assert len(notes) == 1 and "Time is up" in notes[0].text
    stored = await cluster.stored(interview.id)
    assert stored.status is Status.ENDED and stored.end_reason is EndReason.TIME_UP
    async with cluster.db() as uow:
        ended = [e for e in await uow.interviews.list_audit(interview.id) if e.kind == "ended"]
    assert len(ended) == 1


async def test_killing_the_process_that_holds_a_turn_lets_the_other_take_over(
    cluster: Cluster,
) -> None:
    interview, channel, thread = await open_interview(
        cluster, f"start <@{CANDIDATE}|alice> 30m 20k two-sum"
    )
    cluster.openai.chunk_delay = 0.3
    cluster.openai.replies.append("word " * 200)
    await cluster.say(0, channel, thread, "a long answer please", "1700000200.000001")
    await cluster.until(lambda: len(cluster.openai.requests) == 1)
    await asyncio.sleep(0.5)  # the reply is streaming
    await cluster.bots[0].kill()  # SIGKILL mid-reply
    cluster.openai.chunk_delay = 0.0
    await cluster.say(1, channel, thread, "still there?", "1700000200.000002")

    async def taken_over() -> bool:
        turns = await cluster.turns(interview.id)
        return [t.status for t in turns] == [TurnStatus.FAILED, TurnStatus.ANSWERED]

    deadline = time.monotonic() + 60
    while not await taken_over():
        assert time.monotonic() < deadline, await cluster.turns(interview.id)
        await asyncio.sleep(0.2)
    first, second = await cluster.turns(interview.id)
    assert "restart" in (first.error or "") and first.charged_tokens == first.prompt_tokens
    stored = await cluster.stored(interview.id)
    assert stored.tokens_reserved == 0
    assert stored.tokens_used == first.charged_tokens + second.charged_tokens
    texts = [m.text for m in cluster.slack.thread(channel, thread)]
    assert any("please send it again" in t for t in texts)
    assert len(cluster.openai.requests) == 2


async def test_discord_an_event_both_processes_see_is_answered_once(
    pg_database: str, tmp_path: Path
) -> None:
    """A rolling restart: two processes own the same shard for a while, so both receive
    every event; the candidate's message is answered and charged once."""
    async with FakeDiscord() as fake, FakeOpenAI(tokens_per_chunk=4) as openai:
        ids = fake.seed()
        bots = [
            await BotProcess.start(
                tmp_path,
                "run",
                DATABASE_URL=pg_database,
                DISCORD_BOT_TOKEN="test-token",
                DISCORD_API_BASE=fake.api_base,
                DISCORD_GUILD_IDS=str(ids.guild_id),
                DISCORD_SHARD_COUNT="1",
                DISCORD_SHARD_IDS="0",
                OPENAI_API_KEY="sk-test",
                OPENAI_BASE_URL=openai.base_url,
                LOG_LEVEL="INFO",
            )
            for _ in range(2)
        ]
        db = create_uow_factory(pg_database)
        try:
            for bot in bots:
                await bot.wait_for_line("INFO bot.app: ready")
            sessions = [s for s in fake._sessions.values() if s.ready]
            assert [s.shard for s in sessions] == [(0, 1), (0, 1)]  # both get every event
            iid = await fake.send_slash_command(
                ids.guild_id,
                ids.channel_id,
                ids.admin_id,
                subcommand="start",
                options={"candidate": ids.member_id, "challenge": "two-sum"},
            )
            await fake.wait_interaction_response(iid, timeout=10)
            await fake.wait_for(
                lambda: any(e["kind"] == "followup" for e in fake.interaction_responses[iid]),
                timeout=10,
            )
            async with db() as uow:
                (interview,) = await uow.interviews.list_open()
            thread = int(interview.platform_data["thread"])
            await fake.send_message(thread, ids.member_id, "How do I start?")

            async def answered() -> list[Turn]:
                async with db() as uow:
                    turns = await uow.interviews.list_turns(interview.id)
                return [t for t in turns if t.status is TurnStatus.ANSWERED]

            deadline = time.monotonic() + 30
            while not await answered():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # time for a second (wrong) answer to show up
            (turn,) = await answered()
            assert len(openai.requests) == 1
            replies = [
                m
                for m in fake.channel_messages(thread)
                if "tokens this turn" in str(m.get("content", ""))
            ]
            assert len(replies) == 1
            async with db() as uow:
                stored = await uow.interviews.get(interview.id)
            assert stored is not None and stored.tokens_used == turn.charged_tokens
        finally:
            for bot in bots:
                await bot.kill()
            await db.close()


async def test_two_processes_build_and_send_one_report(cluster: Cluster) -> None:
    """The interview ends on one process; both sweep for jobs: one evaluation, one report
    (a DM to the interviewer: no channel is configured), its two files in its thread."""
    cluster.openai.structured_default = valid_answer
    interview, channel, thread = await open_interview(
        cluster, f"start <@{CANDIDATE}|alice> 30m 20k two-sum"
    )
    written = cluster.slack.add_message(
        channel, "How do I start?", user=CANDIDATE, thread_ts=thread
    )
    await cluster.say(1, channel, thread, written.text, written.ts)

    async def answered() -> bool:
        return any(t.status is TurnStatus.ANSWERED for t in await cluster.turns(interview.id))

    deadline = time.monotonic() + 60
    while not await answered():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    replies = await cluster.command(1, f"end <@{CANDIDATE}|alice>")
    assert replies[-1]["text"].startswith("Ended"), replies

    def report_files() -> list[str]:
        dm = cluster.slack.conversation_with(INTERVIEWER)
        if dm is None:
            return []
        messages = cluster.slack.channel_messages(dm, include_replies=True)
        return [cluster.slack.files[f].filename for m in messages for f in m.files]

    await cluster.until(lambda: len(report_files()) == 2)
    await asyncio.sleep(2)  # both processes sweep several times meanwhile
    dm = cluster.slack.conversation_with(INTERVIEWER)
    assert dm is not None
    reports = [m for m in cluster.slack.channel_messages(dm) if "Interview report" in m.text]
    assert len(reports) == 1 and len(report_files()) == 2
    assert len([r for r in cluster.openai.requests if "response_format" in r]) == 1
    async with cluster.db() as uow:
        report = await uow.reports.for_interview(interview.id)
    assert report is not None and report.delivered_at is not None
