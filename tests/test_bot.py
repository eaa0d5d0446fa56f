"""The composition root: CLI exits, settings errors, secret hygiene, health and metrics."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner

from bot.app import BotRuntime
from bot.cli import main
from bot.logs import configure_logging
from bot.settings import load_settings
from core.service import InterviewService
from tests.fakes.recording_platform import RecordingPlatform


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("SLACK_BOT_TOKEN", "DISCORD_BOT_TOKEN", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/bot.db")
    return tmp_path


def test_run_without_platforms_points_to_the_console(clean_env: Path) -> None:
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    assert "interview-buddy console" in result.output


def test_invalid_setting_fails_with_one_line_naming_it(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEFAULT_TIME_LIMIT", "soon")
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invalid configuration: DEFAULT_TIME_LIMIT:")


def test_migrate_command_creates_the_schema(clean_env: Path) -> None:
    result = CliRunner().invoke(main, ["migrate"])
    assert result.exit_code == 0, result.output
    assert (clean_env / "bot.db").stat().st_size > 0


def test_help_lists_the_subcommands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in ("run", "console", "migrate", "challenges"):
        assert name in result.output


def test_secrets_stay_out_of_reprs_and_logs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-value")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-another-secret")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-secret-value")
    settings = load_settings()
    assert "sk-very-secret-value" not in repr(settings) + str(settings.model_dump())
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("DEBUG", (settings.openai_api_key, settings.slack_bot_token))
    try:
        logging.getLogger("test").debug(
            "calling with key %s and %s", "sk-very-secret-value", "xoxb-another-secret"
        )
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "calling with key *** and ***" in err
    assert "secret" not in err.replace("***", "")


class FakeAdapter:
    def __init__(self) -> None:
        self.platform = RecordingPlatform(name="slack")
        self.ready = False
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def is_ready(self) -> bool:
        return self.ready

    async def stop(self) -> None:
        self.started = False

    async def handle_http(self, request: web.Request) -> web.StreamResponse:
        if not self.ready:
            return web.Response(status=503, text="starting")
        return web.Response(text="handled " + await request.text())


async def test_health_waits_for_database_and_adapters_then_serves_metrics(clean_env: Path) -> None:
    settings = load_settings(http_host="127.0.0.1", http_port=0)
    adapter = FakeAdapter()
    built: list[InterviewService] = []

    def factory(service: InterviewService, limiter: object) -> FakeAdapter:
        built.append(service)
        return adapter

    runtime = BotRuntime(settings, {"slack": factory})
    assert await runtime.readiness() == {"database": False, "adapters": False}
    await runtime.start()
    try:
        base = f"http://127.0.0.1:{runtime.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 503
                assert (await response.json())["checks"] == {"database": True, "slack": False}
            async with http.post(f"{base}/slack/events", data="x") as response:
                assert response.status == 503
            adapter.ready = True
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            async with http.post(f"{base}/slack/events", data="payload") as response:
                assert await response.text() == "handled payload"
            async with http.post(f"{base}/discord/events", data="x") as response:
                assert response.status == 404
            # metrics live on their own (internal) port, not next to the Slack endpoint
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 404
            metrics_url = f"http://127.0.0.1:{runtime.metrics_port}/metrics"
            assert runtime.metrics_port not in (None, runtime.port)
            async with http.get(metrics_url) as response:
                body = await response.text()
                assert "interview_buddy_interviews_started_total" in body
        assert adapter.started and built[0].platforms["slack"] is adapter.platform
    finally:
        await runtime.stop()
    assert not adapter.started


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://x", "DATABASE_URL:"),
        ("HTTP_PORT", "70000", "HTTP_PORT:"),
        ("DEFAULT_TOKEN_BUDGET", "lots", "DEFAULT_TOKEN_BUDGET:"),
        ("TIMEZONE", "Mars/Base", "TIMEZONE:"),
        ("DISCORD_GUILD_IDS", "123,abc", "DISCORD_GUILD_IDS:"),
        ("SLACK_BOT_TOKEN", "xoxb-1", "SLACK_SIGNING_SECRET: required (and not empty)"),
        ("LLM_TOKEN_PARAM", "max_length", "LLM_TOKEN_PARAM:"),
        ("REMINDERS", "24h,soon", "REMINDERS:"),
        ("SCHEDULE_GRACE", "a while", "SCHEDULE_GRACE:"),
        ("WEEKLY_SUMMARY", "someday 17:00", "WEEKLY_SUMMARY:"),
        ("WEEKLY_SUMMARY", "fri 25:00", "WEEKLY_SUMMARY:"),
        ("TURN_LEASE_S", "0", "TURN_LEASE_S:"),
    ],
)
def test_each_bad_setting_is_named(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("invalid configuration:") and expected in line
    assert value not in line or variable != "SLACK_BOT_TOKEN"


def test_run_names_the_adapters_it_starts(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "d")
    from bot.app import adapter_factories

    assert list(adapter_factories(load_settings())) == ["slack", "discord"]


def test_database_password_with_any_characters_is_url_encoded(clean_env: Path) -> None:
    from sqlalchemy.engine import make_url

    settings = load_settings(
        database_url="postgresql+asyncpg://buddy@db:5432/interview_buddy",
        database_password="p@ss/w:rd#?%",
    )
    url = make_url(settings.database_url)
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "buddy",
        "p@ss/w:rd#?%",
        "db",
        5432,
        "interview_buddy",
    )
    assert "p@ss" not in repr(settings)


def test_compose_passes_the_password_apart_and_keeps_metrics_internal() -> None:
    import yaml

    compose = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "docker-compose.yml").read_text()
    )
    bot = compose["services"]["bot"]
    env = bot["environment"]
    assert "${POSTGRES_PASSWORD" not in env["DATABASE_URL"]
    assert env["DATABASE_PASSWORD"] == compose["services"]["db"]["environment"]["POSTGRES_PASSWORD"]
    published = [str(p) for p in bot["ports"]]
    assert published == [f"{env['HTTP_PORT']}:{env['HTTP_PORT']}"]
    assert env["METRICS_PORT"] not in " ".join(published) and env["METRICS_PORT"] in bot["expose"]
