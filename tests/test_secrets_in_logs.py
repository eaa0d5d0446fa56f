"""Secrets never reach the logs (issue 11), not even a slice of one, at ``LOG_LEVEL=DEBUG``.

Whole flows on both platforms (start, a message answered, a message the model refuses with
a 401 that echoes part of the key, extend, end, the evaluation report, ``/interview
report``) with logging set up as the CLI does (``bot.cli._setup`` at DEBUG) and *every*
logger at DEBUG besides: the bot's own, slack_sdk / slack_bolt, discord.py, openai, httpx,
aiohttp, SQLAlchemy, aiosqlite, asyncio. Everything they wrote (pytest's capture of every
record, the bot's own stderr handler) is searched for each credential: the Slack bot token,
signing secret and app token, the Discord bot token, the OpenAI key and the database
password, whole and as any slice of :data:`bot.logs.MIN_SLICE` (8) characters.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import aiohttp
import pytest

from adapters.slack.runner import SlackAdapter
from bench.fakes.discord_server import FakeDiscord
from bench.fakes.openai_server import FakeOpenAI
from bench.fakes.slack_server import FakeSlack
from bench.fakes.slack_signing import (
    event_body,
    message_event,
    signed_headers,
    slash_command_body,
)
from bot.app import BotRuntime, slack_config
from bot.cli import _setup
from bot.database import wait_for_database
from bot.logs import MIN_SLICE
from bot.settings import Settings, load_settings
from core.errors import StartupError
from core.models import TurnStatus
from core.ports import RateLimiter
from core.service import InterviewService
from tests.fakes.judge_answers import valid_answer
from tests.test_discord import (
    QUIET_SCHEDULER,
    DiscordWorld,
    discord_py_isolated,
    manual_clock,
    start_runtime,
)
from tests.test_slack import CANDIDATE, INTERVIEWER, SlackWorld
from tests.test_slack_modes import closed_port

BOT_TOKEN = "xoxb-4812099201-7731524466-Qm7vT2kLp8ZrXw3N"
SIGNING_SECRET = "8f1c2e9a7b3d4f6e0a1b2c3d4e5f6a7b"
APP_TOKEN = "xapp-1-A0001-7731524466-Zp9qW3eRt6YuIo1P"
DISCORD_TOKEN = "MTE5OTk4ODc3NjY1NTQ0MzIxMA.GhXy7Q.Vb3nK9mPq2Lr5Ts8Wx1Yz4Ac6Df0Gh2Jk"
OPENAI_KEY = "sk-Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef3Hi6Lm9Np2"
DB_PASSWORD = "Pw!9f8e@7d6c/5b4a:Qx2"
SECRETS = {
    "SLACK_BOT_TOKEN": BOT_TOKEN,
    "SLACK_SIGNING_SECRET": SIGNING_SECRET,
    "SLACK_APP_TOKEN": APP_TOKEN,
    "DISCORD_BOT_TOKEN": DISCORD_TOKEN,
    "OPENAI_API_KEY": OPENAI_KEY,
    "DATABASE_PASSWORD": DB_PASSWORD,
    "DATABASE_PASSWORD (as in DATABASE_URL)": quote(DB_PASSWORD, safe=" +"),
}
# What OpenAI answers for a wrong key: its start and its last characters.
ECHOED_KEY = f"{OPENAI_KEY[:8]}{'*' * 20}{OPENAI_KEY[-12:]}"
WRONG_KEY = (
    f"Incorrect API key provided: {ECHOED_KEY}. You can find your API key at "
    "https://platform.openai.com/account/api-keys."
)
EVERY_LOGGER = (
    "",
    "interview_buddy",
    "adapters",
    "core",
    "bot",
    "storage",
    "scheduler",
    "slack_sdk",
    "slack_bolt",
    "discord",
    "discord.http",
    "discord.gateway",
    "discord.client",
    "discord.state",
    "openai",
    "httpx",
    "httpx2",
    "httpcore",
    "httpcore2",
    "matplotlib",
    "aiohttp",
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.server",
    "aiohttp.web",
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.pool",
    "aiosqlite",
    "asyncpg",
    "alembic",
    "apscheduler",
    "tenacity",
    "asyncio",
)


def slices(secret: str) -> set[str]:
    return {secret[i : i + MIN_SLICE] for i in range(len(secret) - MIN_SLICE + 1)}


def leaks(text: str) -> dict[str, list[str]]:
    """Each secret's slices of MIN_SLICE characters (the whole secret included) in ``text``."""
    found = {}
    for name, secret in SECRETS.items():
        hits = sorted(s for s in slices(secret) if s in text)
        if hits:
            found[name] = hits
    return found


def test_the_leak_check_finds_slices_and_not_innocent_text() -> None:
    assert leaks(f"key {OPENAI_KEY[5:13]}!") == {"OPENAI_API_KEY": [OPENAI_KEY[5:13]]}
    assert leaks(ECHOED_KEY)["OPENAI_API_KEY"]
    assert leaks("Bearer xoxb-*** and sk-**** and a 401") == {}


class Captured:
    """Everything logged while the test ran: pytest's records and the bot's stderr."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]):
        self.caplog = caplog
        self.capsys = capsys

    def text(self) -> str:
        parts = [self.caplog.text]
        for record in self.caplog.records:
            parts += [record.getMessage(), record.exc_text or "", record.stack_info or ""]
        out = self.capsys.readouterr()
        parts += [out.out, out.err]
        return "\n".join(parts)

    def assert_clean(self, *, at_least: int) -> None:
        assert len(self.caplog.records) >= at_least, "the flow was not logged at DEBUG"
        text = self.text()
        assert leaks(text) == {}, [line for line in text.splitlines() if leaks(line)][:5]


@pytest.fixture
def debug_logs(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[Captured]:
    """Logging as ``LOG_LEVEL=DEBUG`` sets it up (bot.cli._setup), every logger at DEBUG,
    pytest's capture kept on the root; all of it put back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogRecordFactory()
    levels = {name: logging.getLogger(name).level for name in EVERY_LOGGER}
    settings = load_settings(
        database_url="sqlite+aiosqlite:///unused.db",
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_app_token=APP_TOKEN,
        discord_bot_token=DISCORD_TOKEN,
        openai_api_key=OPENAI_KEY,
        database_password=DB_PASSWORD,
    )
    _setup(settings, "DEBUG")
    root.handlers.extend(h for h in saved[0] if h not in root.handlers)
    for name in EVERY_LOGGER:
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        yield Captured(caplog, capsys)
    finally:
        root.handlers[:], level, factory = saved
        root.setLevel(level)
        logging.setLogRecordFactory(factory)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


def test_secrets_any_logger_writes_are_masked(debug_logs: Captured) -> None:
    """What the libraries could log at DEBUG (a header, a URL, an echoed key, a traceback):
    masked in every record, whichever handler writes it."""
    logging.getLogger("slack_sdk.web").debug(
        "Sending a request - headers: %s", {"Authorization": f"Bearer {BOT_TOKEN}"}
    )
    logging.getLogger("discord.gateway").debug("IDENTIFY %s", {"token": DISCORD_TOKEN})
    logging.getLogger("openai").debug("HTTP Response 401: %s", WRONG_KEY)
    logging.getLogger("sqlalchemy.engine").info(
        "connecting to postgresql://u:%s@db/x", quote(DB_PASSWORD, safe=" +")
    )
    logging.getLogger("slack_bolt").debug("verifying with %s", SIGNING_SECRET)
    logging.getLogger("slack_sdk.socket_mode").debug("apps.connections.open token=%s", APP_TOKEN)
    try:
        raise RuntimeError(f"auth failed for key {OPENAI_KEY[10:30]}")
    except RuntimeError:
        logging.getLogger("httpx").exception("request failed")
    logging.getLogger("aiohttp.client").debug("unknown credential: Authorization: Bot abc.def")
    text = debug_logs.text()
    assert leaks(text) == {}, text
    assert text.count("***") >= 8 and "Authorization: Bot ***" in text


# ---------------------------------------------------------------------------- Slack


class SecretSlackWorld(SlackWorld):
    async def send(self, body: str, **headers: Any) -> tuple[int, str]:
        async with self.http.post(
            self.url, data=body, headers=signed_headers(SIGNING_SECRET, body, **headers)
        ) as r:
            return r.status, await r.text()


REPORTS = "CREPORT1"


@asynccontextmanager
async def slack_with_secrets(
    tmp_path: Path, *, socket_mode: bool = False
) -> AsyncIterator[SecretSlackWorld]:
    async with (
        FakeSlack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as slack,
        FakeOpenAI(tokens_per_chunk=4) as openai,
    ):
        slack.add_user(INTERVIEWER, name="ivy")
        slack.add_user(CANDIDATE, name="alice")
        slack.add_channel(REPORTS, name="hiring")
        openai.structured_default = valid_answer
        settings = load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/slack.db",
            database_password=DB_PASSWORD,
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_app_token=APP_TOKEN if socket_mode else None,
            slack_api_url=slack.api_url,
            slack_interviewers=INTERVIEWER,
            slack_interviewer_channel=REPORTS,
            openai_api_key=OPENAI_KEY,
            openai_base_url=openai.base_url,
            llm_max_retries=0,
            http_host="127.0.0.1",
            http_port=0,
            metrics_port=0,
        )
        adapters: list[SlackAdapter] = []

        def factory(service: InterviewService, limiter: RateLimiter) -> SlackAdapter:
            adapters.append(
                SlackAdapter(
                    slack_config(settings), service, rate_limiter=limiter, flush_interval_s=0.05
                )
            )
            return adapters[-1]

        runtime = BotRuntime(settings, {"slack": factory})
        await runtime.start()
        async with aiohttp.ClientSession() as http:
            try:
                yield SecretSlackWorld(slack, openai, runtime, adapters[0], http)
            finally:
                await runtime.stop()


async def answered(world: SlackWorld, interview_id: str, count: int) -> None:
    async def done() -> bool:
        turns = await world.turns(interview_id)
        return len(turns) == count and all(
            t.status not in (TurnStatus.PENDING, TurnStatus.STREAMING) for t in turns
        )

    await world.eventually(done)
    await world.settle()


async def test_a_whole_slack_flow_logs_no_secret(tmp_path: Path, debug_logs: Captured) -> None:
    async with slack_with_secrets(tmp_path) as world:
        (started,) = await world.command(f"start <@{CANDIDATE}|alice> 45m 20k two-sum")
        assert started["text"].startswith("Started"), started
        (interview,) = await world.service.queries.open_interviews()
        channel, root = interview.platform_data["channel"], interview.platform_data["thread_ts"]
        await world.say(channel, root, "How do I start?", "1700003000.000001")
        await answered(world, interview.id, 1)
        world.openai.fail_with(401, message=WRONG_KEY)
        await world.say(channel, root, "And then?", "1700003000.000002")
        await answered(world, interview.id, 2)
        turns = await world.turns(interview.id)
        assert [t.status for t in turns] == [TurnStatus.ANSWERED, TurnStatus.FAILED]
        # a forged request is refused (Bolt logs why) and changes nothing
        body = slash_command_body(text="status", user_id=INTERVIEWER)
        async with world.http.post(
            world.url, data=body, headers=signed_headers("wrong", body)
        ) as r:
            assert r.status == 401
        assert (await world.command("extend +10m"))[0]["text"].startswith("Extended")
        assert (await world.command("end"))[0]["text"].startswith("Ended")
        await world.wait_for(lambda: len(world.slack.channel_messages(REPORTS)) == 1)
        await world.settle()
        reposted = await world.command(f"report <@{CANDIDATE}|alice>")
        assert reposted[0]["text"].startswith("Posted"), reposted
        assert len(world.slack.channel_messages(REPORTS)) == 2
        # the secrets were in use (the fakes saw them) ...
        assert any(
            h.get("Authorization") == f"Bearer {OPENAI_KEY}" for h in world.openai.request_headers
        )
        # ... and nothing the bot posted shows the echoed key either
        posted = json.dumps([m.to_api() for m in world.slack.messages.values()])
        assert leaks(posted) == {}
    debug_logs.assert_clean(at_least=200)


async def test_slack_socket_mode_logs_no_app_token(tmp_path: Path, debug_logs: Captured) -> None:
    async with slack_with_secrets(tmp_path, socket_mode=True) as world:
        slack = world.slack
        await slack.wait_socket()
        response_url = slack.new_response_url()
        command = slash_command_body(
            text=f"start <@{CANDIDATE}|alice> 30m 20k two-sum",
            user_id=INTERVIEWER,
            response_url=response_url,
        )
        await slack.socket_send("slash_commands", dict(parse_qsl(command)))
        await world.settle()
        (interview,) = await world.service.queries.open_interviews()
        channel, root = interview.platform_data["channel"], interview.platform_data["thread_ts"]
        event = json.loads(
            event_body(message_event(channel, CANDIDATE, "hi", "1700003100.000001", thread_ts=root))
        )
        await slack.socket_send("events_api", event)
        await answered(world, interview.id, 1)
    debug_logs.assert_clean(at_least=50)


# ---------------------------------------------------------------------------- Discord


@asynccontextmanager
async def discord_with_secrets(tmp_path: Path) -> AsyncIterator[DiscordWorld]:
    async with FakeDiscord(token=DISCORD_TOKEN) as fake, FakeOpenAI(tokens_per_chunk=3) as openai:
        ids = fake.seed()
        stranger = fake.add_member(ids.guild_id, username="sam")
        reports = fake.add_text_channel(ids.guild_id, "hiring")
        openai.structured_default = valid_answer
        settings: Settings = load_settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path}/discord.db",
            database_password=DB_PASSWORD,
            discord_bot_token=DISCORD_TOKEN,
            discord_api_base=fake.api_base,
            discord_guild_ids=str(ids.guild_id),
            discord_interviewer_channel=str(reports),
            openai_api_key=OPENAI_KEY,
            openai_base_url=openai.base_url,
            llm_max_retries=0,
            http_host="127.0.0.1",
            http_port=0,
            metrics_port=0,
            **QUIET_SCHEDULER,
        )
        clock = manual_clock()
        with discord_py_isolated():
            runtime, adapter = await start_runtime(settings, clock)
            world = DiscordWorld(fake, openai, ids, stranger, settings, clock, runtime, adapter)
            try:
                yield world
            finally:
                await world.runtime.stop()


async def test_a_whole_discord_flow_logs_no_secret(tmp_path: Path, debug_logs: Captured) -> None:
    async with discord_with_secrets(tmp_path) as world:
        who = {"candidate": world.candidate}
        started = await world.slash("start", world.interviewer, **who, challenge="two-sum")
        assert started["data"]["content"].startswith("Started"), started
        (interview,) = await world.open_interviews()
        thread = int(interview.platform_data["thread"])
        await world.discord.send_message(thread, world.candidate, "How do I start?")
        await world.turns_settled(interview, 1)
        world.openai.fail_with(401, message=WRONG_KEY)
        await world.discord.send_message(thread, world.candidate, "And then?")
        await world.turns_settled(interview, 2)
        assert [t.status for t in await world.turns(interview)] == [
            TurnStatus.ANSWERED,
            TurnStatus.FAILED,
        ]
        extended = await world.slash("extend", world.interviewer, **who, minutes=10)
        assert extended["data"]["content"].startswith("Extended")
        ended = await world.slash("end", world.interviewer, **who)
        assert ended["data"]["content"].startswith("Ended")
        reports = int(world.settings.discord_interviewer_channel or 0)
        await world.eventually(lambda: bool(world.discord.channel_messages(reports)))
        await world.settle()
        reposted = await world.slash("report", world.interviewer, **who)
        assert reposted["data"]["content"].startswith("Posted"), reposted
        assert any(
            c.headers.get("Authorization") == f"Bot {DISCORD_TOKEN}" for c in world.discord.calls
        )
        posted = json.dumps([m.content for m in world.discord.messages.values()])
        assert leaks(posted) == {}
    debug_logs.assert_clean(at_least=200)


# ---------------------------------------------------------------------------- the database


async def test_an_unreachable_database_logs_no_password(debug_logs: Captured) -> None:
    settings = load_settings(
        database_url=f"postgresql+asyncpg://interview@127.0.0.1:{closed_port()}/interview",
        database_password=DB_PASSWORD,
    )
    assert SECRETS["DATABASE_PASSWORD (as in DATABASE_URL)"] in settings.database_url
    with pytest.raises(StartupError) as failed:
        await wait_for_database(settings.database_url, attempts=2)
    assert leaks(str(failed.value)) == {}
    debug_logs.assert_clean(at_least=2)
