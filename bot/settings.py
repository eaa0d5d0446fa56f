"""Settings from environment variables and an optional ``.env`` file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from core.calendar import WEEKDAYS, parse_when
from core.errors import InvalidInput
from core.parsing import parse_duration, parse_tokens

T = TypeVar("T")


class Settings(BaseSettings):
    """Every setting the bot reads. Names are a contract with deployments; see README."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # May hold a password: kept out of repr(); logs show it masked (bot.database.shown_url).
    database_url: str = Field(default="sqlite+aiosqlite:///./interview-buddy.db", repr=False)
    database_password: SecretStr | None = None  # put into DATABASE_URL, URL-encoded
    # PostgreSQL connections of this process: pool_size kept open, max_overflow more at peaks.
    database_pool_size: int = Field(default=20, ge=1, le=200)
    database_max_overflow: int = Field(default=10, ge=0, le=200)
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    llm_token_param: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    evaluation: Literal["on", "off"] = "on"
    evaluation_model: str | None = None  # None: LLM_MODEL
    default_time_limit: int = 45 * 60
    default_token_budget: int = 20_000
    default_challenge: str = "two-sum"
    timezone: str = "UTC"
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=3000, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    job_sweep_s: float = Field(default=5.0, gt=0, le=300)
    # A job claim whose process died (SIGKILL, OOM) is taken over after this many seconds.
    job_claim_s: float = Field(default=60.0, ge=1, le=3600)
    reminders: str = "24h,1h,5m"
    schedule_grace: int = 600
    weekly_summary: str = "fri 17:00"
    turn_lease_s: float = Field(default=30.0, ge=1, le=600)
    shutdown_grace: float = Field(default=20.0, gt=0, le=600)  # seconds for a clean stop
    max_message_chars: int = Field(default=8000, ge=100, le=100_000)
    candidate_messages_per_minute: int = Field(default=20, ge=0)  # 0: no limit
    workspace_llm_calls_per_minute: int = Field(default=300, ge=0)  # 0: no limit
    llm_breaker_failures: int = Field(default=5, ge=1, le=100)  # in a row, then open
    llm_breaker_cooldown: float = Field(default=30.0, gt=0, le=3600)  # seconds, then probe
    retention_days: int | None = Field(default=None, ge=1)  # None: keep everything

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_interviewer_channel: str | None = None
    slack_interviewers: str = ""
    slack_team_channel: str | None = None

    discord_bot_token: SecretStr | None = None
    discord_api_base: str = "https://discord.com/api/v10"
    discord_guild_ids: str = ""
    discord_interviewer_channel: str | None = None
    discord_interview_channel: str | None = None
    discord_interviewer_role: str | None = None
    discord_team_channel: str | None = None
    discord_shard_count: int | None = Field(default=None, ge=1)
    discord_shard_ids: str = ""

    @field_validator("default_time_limit", "schedule_grace", mode="before")
    @classmethod
    def _duration(cls, value: object) -> int:
        return value if isinstance(value, int) else _checked(parse_duration, str(value))

    @field_validator("reminders")
    @classmethod
    def _reminders(cls, value: str) -> str:
        words = [w.strip() for w in value.split(",") if w.strip()]
        if [w.lower() for w in words] in ([], ["off"]):
            return ""
        try:
            seconds = sorted({parse_duration(w) for w in words}, reverse=True)
        except InvalidInput as exc:
            raise ValueError(str(exc).replace("`", "'") + " (e.g. 24h,1h,5m or off)") from None
        return ",".join(str(s) for s in seconds)

    @field_validator("weekly_summary")
    @classmethod
    def _summary(cls, value: str) -> str:
        when = _checked(parse_when, value)
        return "off" if when is None else f"{WEEKDAYS[when[0]]} {when[1]:%H:%M}"

    @field_validator("default_token_budget", mode="before")
    @classmethod
    def _tokens(cls, value: object) -> int:
        return value if isinstance(value, int) else _checked(parse_tokens, str(value))

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db")
        return value

    @field_validator(
        "database_password",
        "openai_api_key",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "discord_bot_token",
        "openai_base_url",
        "evaluation_model",
        "slack_interviewer_channel",
        "slack_team_channel",
        "discord_team_channel",
        "discord_interviewer_channel",
        "discord_interview_channel",
        "discord_interviewer_role",
        "retention_days",
        mode="before",
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        """An empty variable (``SLACK_SIGNING_SECRET=``) counts as not set."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("default_challenge")
    @classmethod
    def _challenge_slug(cls, value: str) -> str:
        slug = value.strip().lower()
        if not slug or any(c.isspace() or c == "/" for c in slug):
            raise ValueError(f"{value!r} is not a challenge slug such as two-sum")
        return slug

    @field_validator("discord_guild_ids")
    @classmethod
    def _guild_ids(cls, value: str) -> str:
        ids = [part.strip() for part in value.split(",") if part.strip()]
        if not all(part.isdigit() for part in ids):
            raise ValueError("use comma-separated numeric guild ids, e.g. 123456789012345678")
        return ",".join(ids)

    @field_validator("discord_shard_ids")
    @classmethod
    def _shard_ids(cls, value: str) -> str:
        ids = [part.strip() for part in value.split(",") if part.strip()]
        if not all(part.isdigit() for part in ids):
            raise ValueError("use comma-separated shard numbers, e.g. 0,1")
        return ",".join(ids)

    @model_validator(mode="after")
    def _shards(self) -> Settings:
        if self.discord_shard_ids and self.discord_shard_count is None:
            raise ValueError("DISCORD_SHARD_IDS: needs DISCORD_SHARD_COUNT (the total) too")
        count = self.discord_shard_count
        if count is not None and any(
            int(i) >= count for i in self.discord_shard_ids.split(",") if i
        ):
            raise ValueError(
                f"DISCORD_SHARD_IDS: every id must be below DISCORD_SHARD_COUNT ({count})"
            )
        return self

    @model_validator(mode="after")
    def _database_password(self) -> Settings:
        """DATABASE_PASSWORD may hold any characters (``@``, ``/``, ``:``): it is URL-encoded
        into DATABASE_URL here, so deployments never have to encode it themselves."""
        if self.database_password is not None:
            url = make_url(self.database_url).set(
                password=self.database_password.get_secret_value()
            )
            self.database_url = url.render_as_string(hide_password=False)
        return self

    @model_validator(mode="after")
    def _slack_mode(self) -> Settings:
        socket_mode = self.slack_app_token is not None
        if self.slack_bot_token is not None and not socket_mode and not self.slack_signing_secret:
            raise ValueError(
                "SLACK_SIGNING_SECRET: required (and not empty) in HTTP mode, where it verifies "
                "that requests come from Slack; or set SLACK_APP_TOKEN for Socket Mode"
            )
        return self

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None

    @property
    def discord_enabled(self) -> bool:
        return self.discord_bot_token is not None

    @property
    def reminder_offsets(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.reminders.split(",") if s)

    @property
    def uses_real_model(self) -> bool:
        return self.openai_api_key is not None or self.openai_base_url is not None


def _checked(parse: Callable[[str], T], value: str) -> T:
    """``parse(value)``, its InvalidInput as the ValueError pydantic reports (no backticks)."""
    try:
        return parse(value)
    except InvalidInput as exc:
        raise ValueError(str(exc).replace("`", "'")) from None


class SettingsError(Exception):
    """Invalid configuration; the message is one line naming the variable."""


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning validation errors into one clear line per variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            # Checks across variables (no location) name their variable themselves.
            problems.append(
                f"{str(error['loc'][0]).upper()}: {message}" if error["loc"] else message
            )
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
