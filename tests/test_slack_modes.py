"""Slack's two modes through the bot's real endpoint, with the real slack_bolt / slack_sdk
against the fake Slack: who may reach Bolt over HTTP, start-up failures as one line, and a
/healthz that follows the live Socket Mode connection."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError

from adapters.slack.runner import SlackAdapter, SlackConfig
from bench.fakes.openai_server import FakeOpenAI
from bench.fakes.slack_server import FakeSlack
from bench.fakes.slack_signing import FORM, signed_headers, slash_command_body
from bot.app import BotRuntime, slack_config
from core.errors import StartupError
from core.ports import RateLimiter
from core.service import InterviewService
from tests.conftest import Engine
from tests.test_slack import CANDIDATE, INTERVIEWER, SECRET, slack_settings

APP_TOKEN = "xapp-test"  # what FakeSlack accepts for apps.connections.open
HANG_GUARD_S = 30.0
"""Only a guard against hanging: no test depends on anything being this fast."""


@dataclass
class Bot:
    slack: FakeSlack
    runtime: BotRuntime
    adapters: list[SlackAdapter]
    http: aiohttp.ClientSession

    @property
    def adapter(self) -> SlackAdapter:
        return self.adapters[0]

    @property
    def service(self) -> InterviewService:
        assert self.runtime.service is not None
        return self.runtime.service

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.runtime.port}"

    async def start(self) -> None:
        await asyncio.wait_for(self.runtime.start(), HANG_GUARD_S)

    async def start_failure(self) -> StartupError:
        """Start, expecting a StartupError (returned promptly rather than retrying forever)."""
        with pytest.raises(StartupError) as info:
            await self.start()
        return info.value

    async def post(self, body: str, headers: dict[str, str]) -> tuple[int, str]:
        async with self.http.post(f"{self.url}/slack/events", data=body, headers=headers) as r:
            return r.status, await r.text()

    async def health(self) -> int:
        async with self.http.get(f"{self.url}/healthz") as r:
            return r.status

    async def wait_health(self, status: int) -> None:
        await poll(lambda: self.health(), status)

    async def settle(self) -> None:
        await self.adapter.settle()
        await self.service.settle()


async def poll(probe: Callable[[], Awaitable[object]], expected: object) -> None:
    """Poll a real network state until it reads ``expected``."""
    deadline = time.monotonic() + HANG_GUARD_S
    while (value := await probe()) != expected:
        assert time.monotonic() < deadline, f"still {value!r}, waiting for {expected!r}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def slack_bot(
    tmp_path: Path,
    *,
    app_token: str | None = None,
    signing_secret: str | None = SECRET,
    bot_token: str | None = None,
    api_url: str | None = None,
    **adapter_options: Any,
) -> AsyncIterator[Bot]:
    """The whole bot (BotRuntime with the Slack adapter) against a fake Slack; not started."""
    async with FakeSlack() as slack, FakeOpenAI() as openai:
        slack.add_user(INTERVIEWER, name="ivy")
        slack.add_user(CANDIDATE, name="alice")
        settings = slack_settings(tmp_path, slack, openai, metrics_port=0)
        update: dict[str, Any] = {
            "slack_app_token": SecretStr(app_token) if app_token is not None else None,
            "slack_signing_secret": SecretStr(signing_secret) if signing_secret else None,
        }
        if bot_token is not None:
            update["slack_bot_token"] = SecretStr(bot_token)
        if api_url is not None:
            update["slack_api_url"] = api_url
        settings = settings.model_copy(update=update)
        adapters: list[SlackAdapter] = []

        def factory(service: InterviewService, limiter: RateLimiter) -> SlackAdapter:
            options = {"flush_interval_s": 0.05, **adapter_options}
            adapters.append(
                SlackAdapter(slack_config(settings), service, rate_limiter=limiter, **options)
            )
            return adapters[-1]

        runtime = BotRuntime(settings, {"slack": factory})
        async with aiohttp.ClientSession() as http:
            try:
                yield Bot(slack, runtime, adapters, http)
            finally:
                await runtime.stop()


def start_command(slack: FakeSlack) -> tuple[str, str]:
    """A `/interview start` body from the interviewer, and its response-URL id."""
    response_url = slack.new_response_url()
    body = slash_command_body(
        text=f"start <@{CANDIDATE}|alice> 30m 20k two-sum",
        user_id=INTERVIEWER,
        response_url=response_url,
    )
    return body, response_url.rsplit("/", 1)[1]


def forged_headers(body: str) -> dict[str, dict[str, str]]:
    return {
        "unsigned": {"Content-Type": FORM},
        "signed with another secret": signed_headers("not-the-signing-secret", body),
        "signed with an empty secret": signed_headers("", body),  # HMAC keyed with b""
    }


def socket_mode_tasks() -> list[asyncio.Task[Any]]:
    """Live tasks of slack_sdk's Socket Mode client (message processor, monitor, receiver)."""
    return [
        task
        for task in asyncio.all_tasks()
        if not task.done() and "SocketModeClient" in getattr(task.get_coro(), "__qualname__", "")
    ]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def nothing_started(bot: Bot, response_id: str) -> None:
    await bot.settle()
    assert bot.slack.calls_to("conversations.open") == []
    assert await bot.service.queries.open_interviews() == []
    assert bot.slack.responses[response_id] == []


# ---------------------------------------------------------------- who reaches Bolt over HTTP


@pytest.mark.parametrize("signing_secret", [None, SECRET], ids=["no-secret", "secret-set"])
async def test_socket_mode_refuses_slack_requests_over_http(
    tmp_path: Path, signing_secret: str | None
) -> None:
    async with slack_bot(tmp_path, app_token=APP_TOKEN, signing_secret=signing_secret) as bot:
        await bot.start()
        body, response_id = start_command(bot.slack)
        attempts = {**forged_headers(body), "correctly signed": signed_headers(SECRET, body)}
        for name, headers in attempts.items():
            status, text = await bot.post(body, headers)
            assert (name, status) == (name, 404)
            assert "Socket Mode" in text
        await nothing_started(bot, response_id)
        # Bolt asks auth.test with the first request it handles: only our start-up call so far.
        assert len(bot.slack.calls_to("auth.test")) == 1

        # The same command over the socket does start the interview: the setup works, and
        # the requests above were refused for coming over HTTP.
        ack = await bot.slack.socket_send("slash_commands", dict(parse_qsl(body)))
        assert ack["envelope_id"]
        await bot.settle()
        (interview,) = await bot.service.queries.open_interviews()
        assert interview.candidate_id == CANDIDATE
        assert bot.slack.responses[response_id][0]["text"].startswith("Started")


async def test_http_mode_verifies_every_request(tmp_path: Path) -> None:
    async with slack_bot(tmp_path) as bot:
        await bot.start()
        body, response_id = start_command(bot.slack)
        for name, headers in forged_headers(body).items():
            status, _ = await bot.post(body, headers)
            assert (name, status) == (name, 401)
        await nothing_started(bot, response_id)

        status, _ = await bot.post(body, signed_headers(SECRET, body))
        assert status == 200
        await bot.settle()
        (interview,) = await bot.service.queries.open_interviews()
        assert interview.candidate_id == CANDIDATE
        assert len(bot.slack.calls_to("conversations.open")) == 1
        assert bot.slack.responses[response_id][0]["text"].startswith("Started")


@pytest.mark.parametrize(
    ("signing_secret", "app_token"),
    [
        (None, None),
        (SecretStr(""), None),
        (SecretStr(" \t"), None),
        (SecretStr(""), SecretStr("  ")),  # a blank app token is not Socket Mode
    ],
    ids=["missing", "empty", "whitespace", "empty-with-blank-app-token"],
)
async def test_http_mode_adapter_refuses_a_missing_or_empty_signing_secret(
    engine: Engine, signing_secret: SecretStr | None, app_token: SecretStr | None
) -> None:
    config = SlackConfig(
        bot_token=SecretStr("xoxb-test"), signing_secret=signing_secret, app_token=app_token
    )
    with pytest.raises(ValueError, match=r"^SLACK_SIGNING_SECRET is missing or empty"):
        SlackAdapter(config, engine.service)


# ---------------------------------------------------------------- start-up failures


@pytest.mark.parametrize(
    ("app_token", "error"),
    [("xoxb-test", "not_allowed_token_type"), ("xapp-revoked-0001", "invalid_auth")],
    ids=["bot-token-as-app-token", "unknown-app-token"],
)
async def test_a_refused_app_token_stops_start_up_with_one_line(
    tmp_path: Path, app_token: str, error: str
) -> None:
    async with slack_bot(tmp_path, app_token=app_token) as bot:
        failure = await bot.start_failure()
        assert str(failure) == (
            f"Slack rejected SLACK_APP_TOKEN ({error}): "
            "use an app-level token (xapp-…) with connections:write"
        )
        assert isinstance(failure.__cause__, SlackApiError)
        assert len(bot.slack.calls_to("apps.connections.open")) == 1  # asked once, no retries
        assert bot.slack.socket_connections == 0
        assert not await bot.adapter.is_ready()
        assert socket_mode_tasks() == []


@pytest.mark.parametrize("app_token", [None, APP_TOKEN], ids=["http", "socket-mode"])
async def test_a_refused_bot_token_stops_start_up_with_one_line(
    tmp_path: Path, app_token: str | None
) -> None:
    async with slack_bot(tmp_path, app_token=app_token, bot_token="xoxb-revoked-0001") as bot:
        failure = await bot.start_failure()
        assert str(failure) == (
            "Slack rejected SLACK_BOT_TOKEN (invalid_auth): "
            "use the Bot User OAuth Token (xoxb-…) of the installed app"
        )
        assert "xoxb-revoked-0001" not in str(failure)
        assert isinstance(failure.__cause__, SlackApiError)
        assert bot.slack.calls_to("apps.connections.open") == []
        assert not await bot.adapter.is_ready()
        assert socket_mode_tasks() == []


@pytest.mark.parametrize("app_token", [None, APP_TOKEN], ids=["http", "socket-mode"])
async def test_an_unreachable_slack_stops_start_up_with_one_line(
    tmp_path: Path, app_token: str | None
) -> None:
    api_url = f"http://127.0.0.1:{closed_port()}/api/"
    async with slack_bot(tmp_path, app_token=app_token, api_url=api_url) as bot:
        failure = await bot.start_failure()
        assert str(failure) == (
            f"could not reach Slack at {api_url} (SLACK_API_URL): connection refused"
        )
        assert isinstance(failure.__cause__, aiohttp.ClientConnectorError)
        assert bot.slack.calls == []
        assert not await bot.adapter.is_ready()
        assert socket_mode_tasks() == []


async def test_a_socket_that_never_connects_stops_start_up(tmp_path: Path) -> None:
    async with slack_bot(
        tmp_path,
        app_token=APP_TOKEN,
        socket_ping_interval_s=0.1,
        socket_connect_timeout_s=1.0,
    ) as bot:
        bot.slack.refuse_sockets(None)  # tickets are issued, the WebSocket handshake fails
        failure = await bot.start_failure()
        assert str(failure).startswith(
            "could not open Slack's Socket Mode connection to 127.0.0.1 within 1 s"
        )
        assert "\n" not in str(failure)
        assert bot.slack.socket_refusals >= 2  # the SDK retried the handshake...
        assert len(bot.slack.calls_to("apps.connections.open")) == 1  # ...with our one URL
        assert not await bot.adapter.is_ready()
        assert socket_mode_tasks() == []  # nothing keeps retrying behind our back


# ---------------------------------------------------------------- live health


@pytest.mark.parametrize(
    "refusal", ["internal_error", None], ids=["ticket-refused", "handshake-refused"]
)
async def test_healthz_follows_the_socket_through_a_drop_and_a_reconnect(
    tmp_path: Path, refusal: str | None
) -> None:
    async with slack_bot(tmp_path, app_token=APP_TOKEN, socket_ping_interval_s=0.5) as bot:
        await bot.start()
        slack = bot.slack
        # The first connection used the URL of our own apps.connections.open call.
        assert len(slack.calls_to("apps.connections.open")) == 1
        assert slack.tickets_used == slack.tickets_issued
        assert await bot.health() == 200

        slack.refuse_sockets(refusal)
        await slack.drop_sockets()
        await bot.wait_health(503)
        refused = slack.socket_refusals

        async def failed_twice_more() -> bool:
            return slack.socket_refusals >= refused + 2

        await poll(failed_twice_more, True)
        assert await bot.health() == 503  # still down while reconnects keep failing

        slack.accept_sockets()
        await slack.wait_socket(HANG_GUARD_S, connections=2)
        await bot.wait_health(200)

        body, response_id = start_command(slack)
        ack = await slack.socket_send("slash_commands", dict(parse_qsl(body)))
        assert ack["envelope_id"]
        await bot.settle()
        (interview,) = await bot.service.queries.open_interviews()
        assert interview.candidate_id == CANDIDATE
        assert slack.responses[response_id][0]["text"].startswith("Started")


# ---------------------------------------------------------------- start-up noise


@pytest.mark.parametrize("app_token", [None, APP_TOKEN], ids=["http", "socket-mode"])
async def test_starting_logs_no_bolt_warning(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    app_token: str | None,
) -> None:
    # As in a deployment configured through the environment (Bolt reads these itself).
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    caplog.set_level(logging.INFO)
    async with slack_bot(tmp_path, app_token=app_token) as bot:
        await bot.start()
        assert await bot.health() == 200
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "will be unused" in m or "will be ignored" in m]
    assert [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(("slack_bolt", "slack_sdk")) and r.levelno >= logging.WARNING
    ] == []
    assert any(m.startswith("Slack: ") for m in messages)  # the adapter's own start-up line
