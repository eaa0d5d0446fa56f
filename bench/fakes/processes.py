"""Real ``interview-buddy`` processes for process-level tests: start, read, signal, kill."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from storage import normalize_url, upgrade

ROOT = Path(__file__).resolve().parents[2]
RESET_PREFIXES = (
    "OPENAI_",
    "SLACK_",
    "DISCORD_",
    "DATABASE_",
    "DEFAULT_",
    "LOG_",
    "TURN_",
    "JOB_",
    "SHUTDOWN_",
)


@asynccontextmanager
async def fresh_pg_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """A migrated PostgreSQL database of its own on ``server_url``'s server (bot processes
    connect to it by URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(
        normalize_url(server_url), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = normalize_url(server_url).rsplit("/", 1)[0] + f"/{name}"
        await upgrade(url)
        yield url
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


def free_port() -> int:
    """A local port nobody listens on (right now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bot_env(cwd: Path, **env: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(RESET_PREFIXES)}
    return {
        **keep,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite+aiosqlite:///{cwd}/bot.db",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "METRICS_PORT": "0",
        **env,
    }


class BotProcess:
    """``python -m bot <args>`` as a child process, its stderr collected line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._seen = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, cwd: Path, *args: str, **env: str) -> BotProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            cwd=cwd,
            env=bot_env(cwd, **env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._seen.set()

    async def wait_for_line(self, text: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not any(text in line for line in self.lines):
                if self.proc.returncode is not None:
                    raise AssertionError(f"exited {self.proc.returncode}:\n{self.output}")
                self._seen.clear()
                await self._seen.wait()

    async def exit_code(self, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._reader
        return code

    async def kill(self) -> None:
        """SIGKILL (a crash: nothing is cleaned up) and wait for the process to be gone."""
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await asyncio.gather(self._reader, return_exceptions=True)

    def terminate(self) -> None:
        """SIGTERM: what ``docker stop`` and Kubernetes send first (a clean shutdown)."""
        if self.proc.returncode is None:
            self.proc.terminate()

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    @property
    def output(self) -> str:
        return "\n".join(self.lines)
