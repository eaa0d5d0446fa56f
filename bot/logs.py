"""Logging set-up: one line per record, secrets scrubbed even at DEBUG."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from pydantic import SecretStr


class RedactSecrets(logging.Filter):
    """Replaces any configured secret value that reaches a log record with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            if any(secret in message for secret in self._secrets):
                for secret in self._secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, None
        return True


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record arrives (runners may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str, secrets: Iterable[SecretStr | None] = ()) -> None:
    """Configure the root logger once for the process."""
    handler = StderrHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    handler.addFilter(RedactSecrets(s.get_secret_value() for s in secrets if s is not None))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries log request headers (tokens) at DEBUG; keep them at INFO.
    for noisy in (
        "httpx",
        "httpx2",
        "httpcore",
        "openai",
        "slack_sdk",
        "slack_bolt",
        "discord.http",
        "discord.gateway",
        "aiosqlite",
        "asyncio",
    ):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLevelName(level)))
    # Alembic announces each of its plugins and its DDL mode at INFO on every start;
    # storage.migrate logs the one line that matters (which revision the schema is at).
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLevelName(level)))
