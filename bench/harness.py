"""What every benchmark shares: realistic fakes, the real bot as a child process, figures.

Realistic means the issue's figures: the model takes 300 ms to its first token and then
streams 50 tokens a second; every Slack and Discord API call takes 80 ms; the fakes enforce
the platforms' documented rate limits (their defaults). The bot runs as ``python -m bot run``
in its own process, so its event loop is not the load generator's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.fakes.discord_server import FakeDiscord
from bench.fakes.openai_server import FakeOpenAI
from bench.fakes.processes import BotProcess, free_port, fresh_pg_database
from bench.fakes.slack_server import FakeSlack

ROOT = Path(__file__).resolve().parents[1]
MODEL_TTFT_S = 0.3
MODEL_TOKENS_PER_S = 50.0
PLATFORM_LATENCY_S = 0.08
SECRET = "bench-signing-secret"
POSTGRES_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Distribution:
    """p50 / p99 / max of a sample (in the sample's unit)."""

    n: int
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Distribution:
        ordered = sorted(values)
        if not ordered:
            return cls(0, float("nan"), float("nan"), float("nan"))
        p99 = ordered[min(len(ordered) - 1, max(0, round(len(ordered) * 0.99 + 0.5) - 1))]
        return cls(len(ordered), statistics.median(ordered), p99, ordered[-1])

    def ms(self) -> str:
        """``p50 12.3 ms, p99 45.6 ms, max 78.9 ms (n=100)`` for a sample in seconds."""
        return (
            f"p50 {self.p50 * 1000:.1f} ms, p99 {self.p99 * 1000:.1f} ms, "
            f"max {self.max * 1000:.1f} ms (n={self.n})"
        )

    def plain(self, unit: str = "", digits: int = 2) -> str:
        """The same in the sample's own unit."""
        return (
            f"p50 {self.p50:.{digits}f}{unit}, p99 {self.p99:.{digits}f}{unit}, "
            f"max {self.max:.{digits}f}{unit} (n={self.n})"
        )


def machine() -> str:
    """One line naming what the figures were measured on."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        rev = "?"
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, commit {rev or '?'}"
    )


def header(title: str, **figures: object) -> None:
    """Print what is measured, on what, with which settings."""
    print(f"== {title}")
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    if figures:
        print("settings: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def realistic_openai(**kwargs: object) -> FakeOpenAI:
    """The fake model at 300 ms to first token, then 50 tokens/s."""
    openai = FakeOpenAI(**kwargs)  # type: ignore[arg-type]
    openai.realistic(ttft=MODEL_TTFT_S, tokens_per_second=MODEL_TOKENS_PER_S)
    return openai


def realistic_slack(**kwargs: object) -> FakeSlack:
    """The fake Slack with 80 ms per API call and its documented limits."""
    return FakeSlack(latency=PLATFORM_LATENCY_S, **kwargs)  # type: ignore[arg-type]


def realistic_discord(**kwargs: object) -> FakeDiscord:
    """The fake Discord with 80 ms per API call and its documented limits."""
    return FakeDiscord(latency=PLATFORM_LATENCY_S, **kwargs)  # type: ignore[arg-type]


async def start_bot(cwd: Path, **env: str) -> tuple[BotProcess, int, int]:
    """``python -m bot run`` with ``env``; waits until ready (90 s at the most: a loaded
    machine starts slowly). Returns the process, its HTTP port and its metrics port."""
    http_port, metrics_port = free_port(), free_port()
    bot = await BotProcess.start(
        cwd,
        "run",
        HTTP_PORT=str(http_port),
        METRICS_PORT=str(metrics_port),
        LOG_LEVEL=env.pop("LOG_LEVEL", "WARNING"),
        **env,
    )
    async with aiohttp.ClientSession() as http:

        async def healthy() -> bool:
            if bot.returncode is not None:
                raise RuntimeError(f"the bot exited {bot.returncode}:\n{bot.output}")
            try:
                async with http.get(f"http://127.0.0.1:{http_port}/healthz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await until(healthy, limit_s=90, every_s=0.1)
    return bot, http_port, metrics_port


def slack_env(
    slack: FakeSlack, openai: FakeOpenAI, database_url: str, **extra: str
) -> dict[str, str]:
    """The environment of a bot serving the fake Slack over HTTP with the fake model."""
    return {
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.api_url,
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": openai.base_url,
        **extra,
    }


def discord_env(
    discord: FakeDiscord, openai: FakeOpenAI, database_url: str, guild_id: int, **extra: str
) -> dict[str, str]:
    """The environment of a bot serving the fake Discord with the fake model."""
    return {
        "DATABASE_URL": database_url,
        "DISCORD_BOT_TOKEN": discord.token,
        "DISCORD_API_BASE": discord.api_base,
        "DISCORD_GUILD_IDS": str(guild_id),
        "OPENAI_API_KEY": "sk-bench",
        "OPENAI_BASE_URL": openai.base_url,
        **extra,
    }


async def scrape(http: aiohttp.ClientSession, metrics_port: int) -> dict[str, float]:
    """Every sample of the bot's ``/metrics`` as ``name{labels}`` -> value."""
    async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
        text = await response.text()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def until(
    condition: Callable[[], bool] | Callable[[], Awaitable[bool]],
    limit_s: float = 120.0,
    every_s: float = 0.02,
) -> None:
    """Poll ``condition`` until true (raises TimeoutError after ``limit_s``)."""
    deadline = time.monotonic() + limit_s
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {limit_s} s")
        await asyncio.sleep(every_s)


def add_database_flags(parser: argparse.ArgumentParser) -> None:
    """``--sqlite`` (one file, one process) or ``--postgres URL`` (default: a fresh database on
    the local server, dropped afterwards)."""
    parser.add_argument("--sqlite", action="store_true", help="use SQLite instead of PostgreSQL")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES", POSTGRES_SERVER),
        help="PostgreSQL server URL (a fresh database is created on it)",
    )


@asynccontextmanager
async def bench_database(args: argparse.Namespace, folder: Path) -> AsyncIterator[str]:
    """The database URL the bot processes share for one run."""
    if args.sqlite:
        yield f"sqlite+aiosqlite:///{folder}/bench.db"
        return
    async with fresh_pg_database(args.postgres, "bench") as url:
        yield url
