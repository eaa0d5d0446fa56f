"""PostgreSQL stopped and restarted under a running bot.

A private PostgreSQL cluster (``initdb`` into a temporary folder, its own port, trust
authentication) serves one real ``interview-buddy run`` with Slack over HTTP against the
fake Slack and the fake OpenAI. While the database is down ``/healthz`` answers 503 and a
candidate's message gets a clear "send it again" (never silence); once the server is back
the bot reconnects by itself (connections are pinged at checkout), ``/healthz`` is 200
again, the next message is answered, and the stored turns and token counters agree:
nothing half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bench.fakes.openai_server import FakeOpenAI
from bench.fakes.processes import BotProcess, free_port
from bench.fakes.slack_server import FakeSlack
from bench.fakes.slack_signing import event_body, message_event, signed_headers, slash_command_body
from core import texts
from core.models import Interview, Turn, TurnStatus
from storage import UnitOfWorkFactory, create_uow_factory

pytestmark = pytest.mark.slow

SECRET = "restart-secret"
INTERVIEWER = "UINTVW01"
CANDIDATE = "UCANDI01"
NOT_SAVED = "I couldn't handle your message"
LIMIT_S = 30.0  # a guard against hanging, not a speed requirement


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server binaries (Debian's layout, else the PATH)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for folder in reversed(found):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


@dataclass
class PrivateCluster:
    """One PostgreSQL server of our own: its data folder, port and socket folder."""

    bin: Path
    root: Path
    port: int
    as_user: list[str]  # run the server as this user (PostgreSQL refuses to run as root)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    async def run(self, tool: str, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self.as_user,
            str(self.bin / tool),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, f"{tool} {' '.join(args)}:\n{out.decode()}"

    def _options(self) -> str:
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=off"
        )

    async def init(self) -> None:
        await self.run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync"
        )

    def _server_args(self, *args: str) -> list[str]:
        # -l: the server's output goes to a file, never to our pipe (which would stay open)
        log = str(self.root / "server.log")
        return ["-D", str(self.data), "-l", log, "-w", "-o", self._options(), *args]

    async def start(self) -> None:
        await self.run("pg_ctl", *self._server_args("start"))

    async def stop(self) -> None:
        await self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    async def restart(self) -> None:
        await self.run("pg_ctl", *self._server_args("-m", "fast", "restart"))


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[PrivateCluster]:
    folder = postgres_bin()
    if folder is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="ib-pg-"))  # short: the socket path is limited
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if runuser is None or owner is None:
            shutil.rmtree(root)
            pytest.skip("running as root needs a 'postgres' user and runuser for the server")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = [runuser, "-u", "postgres", "--"]
    server = PrivateCluster(folder, root, free_port(), as_user)
    try:
        await server.init()
        await server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            await server.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class World:
    slack: FakeSlack
    openai: FakeOpenAI
    bot: BotProcess
    port: int
    http: aiohttp.ClientSession
    db: UnitOfWorkFactory

    async def health(self) -> int:
        try:
            async with self.http.get(f"http://127.0.0.1:{self.port}/healthz") as r:
                return r.status
        except aiohttp.ClientError:
            return 0

    async def post(self, body: str) -> int:
        url = f"http://127.0.0.1:{self.port}/slack/events"
        async with self.http.post(url, data=body, headers=signed_headers(SECRET, body)) as r:
            return r.status

    async def say(self, interview: Interview, text: str, ts: str) -> None:
        data = interview.platform_data
        event = message_event(data["channel"], CANDIDATE, text, ts, thread_ts=data["thread_ts"])
        assert await self.post(event_body(event)) == 200  # acknowledged whatever happens next

    def failed_answers(self) -> int:
        """How often the bot logged that answering failed after the message was stored."""
        return sum("answering failed; the sweep takes over" in line for line in self.bot.lines)

    def thread(self, interview: Interview) -> list[str]:
        data = interview.platform_data
        return [m.text for m in self.slack.thread(data["channel"], data["thread_ts"])]

    def replies(self, interview: Interview) -> int:
        data = interview.platform_data
        return sum(
            "tokens this turn" in json.dumps(m.blocks or m.chunks or [])
            for m in self.slack.thread(data["channel"], data["thread_ts"])
        )

    async def turns(self, interview: Interview) -> list[Turn]:
        async with self.db() as uow:
            return await uow.interviews.list_turns(interview.id)

    async def stored(self, interview: Interview) -> Interview:
        async with self.db() as uow:
            found = await uow.interviews.get(interview.id)
        assert found is not None
        return found


async def until(probe: Callable[[], Awaitable[bool]], what: str) -> float:
    """Poll a real network state; returns how long it took."""
    began = time.monotonic()
    while not await probe():
        assert time.monotonic() - began < LIMIT_S, f"never: {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


@pytest_asyncio.fixture
async def world(cluster: PrivateCluster, tmp_path: Path) -> AsyncIterator[World]:
    async with FakeSlack() as slack, FakeOpenAI(tokens_per_chunk=3) as openai:
        slack.add_user(INTERVIEWER, name="ivy")
        slack.add_user(CANDIDATE, name="alice")
        port = free_port()
        bot = await BotProcess.start(
            tmp_path,
            "run",
            DATABASE_URL=cluster.url,
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
        db = create_uow_factory(cluster.url)
        try:
            await bot.wait_for_line("INFO bot.app: ready")
            async with aiohttp.ClientSession() as http:
                yield World(slack, openai, bot, port, http, db)
        finally:
            await bot.kill()
            await db.close()


async def start_interview(world: World) -> Interview:
    response_url = world.slack.new_response_url()
    body = slash_command_body(
        text=f"start <@{CANDIDATE}|alice> 30m 20k two-sum",
        user_id=INTERVIEWER,
        response_url=response_url,
    )
    assert await world.post(body) == 200
    rid = response_url.rsplit("/", 1)[1]

    async def started() -> bool:
        return bool(world.slack.responses.get(rid))

    await until(started, "the start command's answer")
    assert world.slack.responses[rid][-1]["text"].startswith("Started"), world.slack.responses
    async with world.db() as uow:
        (interview,) = await uow.interviews.list_open()
    return interview


async def answered(world: World, interview: Interview, n: int) -> None:
    async def done() -> bool:
        turns = await world.turns(interview)
        settled = [t for t in turns if t.status is TurnStatus.ANSWERED]
        return len(settled) == n and world.replies(interview) == n

    await until(done, f"{n} answered turns")


async def test_the_bot_rides_out_a_postgresql_restart(
    world: World, cluster: PrivateCluster
) -> None:
    interview = await start_interview(world)
    await world.say(interview, "How do I start?", "1700000300.000001")
    await answered(world, interview, 1)
    assert await world.health() == 200

    # Down: /healthz says so, and a message sent now is answered with "send it again".
    stopped = time.monotonic()
    await cluster.stop()
    await until(lambda: _is(world.health(), 503), "/healthz 503 while the database is down")
    await world.say(interview, "Are you there?", "1700000300.000002")

    async def told() -> bool:
        return any(NOT_SAVED in text for text in world.thread(interview))

    await until(told, "the candidate is told the message was not saved")
    assert await world.health() == 503

    # Back: the bot reconnects by itself; nothing was stored for the lost message.
    await cluster.start()
    back = await until(lambda: _is(world.health(), 200), "/healthz 200 once it is back")
    outage = time.monotonic() - stopped
    await world.say(interview, "Are you there now?", "1700000300.000003")
    await answered(world, interview, 2)

    # A plain `pg_ctl restart -m fast`: every pooled connection is dead; the next message
    # is answered all the same (pre-ping replaces them), without any apology.
    await cluster.restart()
    restarted = time.monotonic()
    await world.say(interview, "And after a quick restart?", "1700000300.000004")
    await answered(world, interview, 3)
    after_restart = time.monotonic() - restarted
    await until(lambda: _is(world.health(), 200), "/healthz 200 after the restart")

    turns = await world.turns(interview)
    assert [t.content for t in turns] == [
        "How do I start?",
        "Are you there now?",
        "And after a quick restart?",
    ]
    assert all(t.status is TurnStatus.ANSWERED and t.usage_reported for t in turns)
    stored = await world.stored(interview)
    assert stored.tokens_reserved == 0
    assert stored.tokens_used == sum(t.charged_tokens for t in turns) > 0
    assert len(world.openai.requests) == 3
    assert sum(NOT_SAVED in text for text in world.thread(interview)) == 1

    # Down while a reply streams: the turn is stored, so the engine owns it. Its lease can't
    # be renewed, so the reply stops; once the database is back the sweep closes the turn as
    # failed, charged its prompt, releases its reservation and asks for the message again.
    world.openai.chunk_delay = 0.1
    world.openai.replies.append("word " * 300)
    await world.say(interview, "A long answer, please", "1700000300.000005")
    await until(lambda: _is(_count(world.openai.requests), 4), "the fourth call started")
    failures = world.failed_answers()
    await cluster.stop()
    await until(lambda: _is(_len(world.failed_answers), failures + 1), "the reply stopped")
    await cluster.start()

    async def settled() -> bool:
        last = (await world.turns(interview))[-1]
        return last.status is TurnStatus.FAILED

    await until(settled, "the interrupted turn is closed once the database is back")
    turns = await world.turns(interview)
    last = turns[-1]
    assert len(turns) == 4 and last.charged_tokens == last.prompt_tokens > 0
    stored = await world.stored(interview)
    assert stored.tokens_reserved == 0
    assert stored.tokens_used == sum(t.charged_tokens for t in turns)

    async def asked_again() -> bool:
        return texts.RESEND_AFTER_RESTART in world.thread(interview)

    await until(asked_again, "the interrupted turn asks for the message again")
    assert sum(NOT_SAVED in text for text in world.thread(interview)) == 1  # no second one
    print(  # the measurement, shown with -s
        f"\noutage {outage:.2f} s; healthy {back:.2f} s after PostgreSQL was back; a message sent "
        f"{after_restart:.2f} s after `pg_ctl restart` was answered; 0 messages lost silently"
    )


async def _count(items: list[Any]) -> int:
    return len(items)


async def _len(count: Callable[[], int]) -> int:
    return count()


async def _is(probe: Awaitable[Any], expected: Any) -> bool:
    return await probe == expected
