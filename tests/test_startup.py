"""Start-up and shutdown of the real ``interview-buddy`` process: signals at any stage, one
clear line for what could not be reached, no noise, ``--version``."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.fakes.processes import BotProcess, bot_env, free_port
from bench.fakes.slack_server import FakeSlack
from bot.cli import main

ROOT = Path(__file__).resolve().parents[1]


closed_port = free_port


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[BotProcess]]]:
    started: list[BotProcess] = []

    async def start(*args: str, **env: str) -> BotProcess:
        started.append(await BotProcess.start(tmp_path, *args, **env))
        return started[-1]

    yield start
    for bot in started:
        await bot.kill()


Spawn = Callable[..., Awaitable[BotProcess]]


SLACK = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret"}


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
async def test_a_signal_stops_the_wait_for_an_unreachable_database_at_once(
    spawn: Spawn, signum: int, code: int
) -> None:
    url = f"postgresql+asyncpg://buddy:pw@127.0.0.1:{closed_port()}/buddy"
    bot = await spawn("run", DATABASE_URL=url, **SLACK)
    await bot.wait_for_line("database not reachable yet (attempt 1 of 30)")
    bot.proc.send_signal(signum)
    assert await bot.exit_code(timeout=15) == code
    assert "Traceback" not in bot.output and "pw@" not in bot.output


async def test_sigterm_shuts_a_running_bot_down_cleanly(spawn: Spawn) -> None:
    async with FakeSlack() as slack:
        bot = await spawn("run", SLACK_API_URL=slack.api_url, **SLACK)
        await bot.wait_for_line("INFO bot.app: ready")
        bot.proc.send_signal(signal.SIGTERM)
        assert await bot.exit_code() == 0
    assert "Traceback" not in bot.output
    # start-up says what matters and nothing else
    assert not [line for line in bot.output.splitlines() if "alembic" in line]
    assert "As you gave" not in bot.output and "PyNaCl" not in bot.output
    assert "database schema upgraded from nothing to" in bot.output


async def test_unreachable_slack_is_one_line_naming_the_setting(spawn: Spawn) -> None:
    api = f"http://127.0.0.1:{closed_port()}/api/"
    bot = await spawn("run", SLACK_API_URL=api, **SLACK)
    assert await bot.exit_code() == 1
    (error,) = [line for line in bot.lines if line.startswith("error:")]
    assert error.startswith(f"error: could not reach Slack at {api} (SLACK_API_URL)")
    assert "Traceback" not in bot.output


async def test_unreachable_discord_is_one_line_naming_the_setting(spawn: Spawn) -> None:
    api = f"http://127.0.0.1:{closed_port()}/api/v10"
    bot = await spawn("run", DISCORD_BOT_TOKEN="d.e.f", DISCORD_API_BASE=api)
    assert await bot.exit_code() == 1
    (error,) = [line for line in bot.lines if line.startswith("error:")]
    assert error.startswith(f"error: could not reach Discord at {api} (DISCORD_API_BASE)")
    assert "Traceback" not in bot.output


def test_migrate_against_an_unreachable_database_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    port = closed_port()
    monkeypatch.setenv("DATABASE_URL", f"postgresql+asyncpg://buddy:secret@127.0.0.1:{port}/x")
    result = CliRunner().invoke(main, ["migrate"])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line == (
        f"error: could not open the database at postgresql+asyncpg://buddy:***@127.0.0.1:{port}/x"
        f" (DATABASE_URL): [Errno 111] Connect call failed ('127.0.0.1', {port})"
    )


async def test_the_traceback_is_shown_only_at_debug(spawn: Spawn) -> None:
    url = f"postgresql+asyncpg://buddy@127.0.0.1:{closed_port()}/x"
    quiet = await spawn("migrate", DATABASE_URL=url)
    assert await quiet.exit_code() == 1 and "Traceback" not in quiet.output
    loud = await spawn("migrate", DATABASE_URL=url, LOG_LEVEL="DEBUG")
    assert await loud.exit_code() == 1 and "Traceback" in loud.output
    assert loud.lines[-1].startswith("error: could not open the database")


def test_unknown_default_challenge_stops_run_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in bot_env(tmp_path, DEFAULT_CHALLENGE="nope", **SLACK).items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    (line,) = [x for x in result.output.splitlines() if x.startswith("invalid configuration")]
    assert line.startswith("invalid configuration: DEFAULT_CHALLENGE: there is no challenge 'nope'")


def test_empty_signing_secret_is_refused_in_http_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "  ")
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("invalid configuration: SLACK_SIGNING_SECRET: required (and not empty)")


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip().startswith("interview-buddy, version ")
