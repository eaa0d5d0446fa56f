"""Logging set-up: one line per record, secrets scrubbed even at DEBUG.

Scrubbing happens where records are made (the process's log record factory), so it holds for
every handler and every logger: the bot's own, slack_sdk, discord.py, openai, httpx, aiohttp,
SQLAlchemy, and whatever a test or an operator attaches. A configured secret is replaced by
``***`` wherever it appears in a record's message, its traceback or its stack: whole (secrets of
6 characters or more), any slice of it of :data:`MIN_SLICE` characters or more (an API that
echoes part of a wrong key), and its URL-encoded forms (a password inside a database URL).
Credentials in an ``Authorization`` header or a ``token=`` parameter are masked even when they
are no configured secret.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from pydantic import SecretStr

MIN_SECRET = 6  # shorter values are not treated as secrets (they would match everywhere)
MIN_SLICE = 8  # a slice of a secret this long is a leak
MASK = "***"

# Credentials by their shape: an Authorization header (Bearer / Bot / Basic), a token=…
# parameter, and the token formats of Slack, OpenAI and Discord.
_CREDENTIALS = re.compile(
    r"(?P<keep>(?i:authorization)['\"]?\s*[:=]\s*['\"]?(?i:bearer|bot|basic)\s+)[^\s'\",}]+"
    r"|(?P<keep2>\b(?:token|api_key|app_token|client_secret)=)[^\s&'\",}]+"
    r"|\bxox[abpre]-[A-Za-z0-9-]{8,}|\bxapp-[A-Za-z0-9-]{8,}|\bsk-[A-Za-z0-9_\-]{16,}"
)


class Redactor:
    """Masks configured secrets (whole, slices, URL-encoded) and credential shapes in text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values: set[str] = set()
        for secret in secrets:
            if len(secret) < MIN_SECRET:
                continue
            # as is, and URL-encoded the ways URLs carry it (SQLAlchemy keeps " " and "+")
            values.update(
                {
                    secret,
                    quote(secret),
                    quote(secret, safe=""),
                    quote(secret, safe=" +"),
                    quote_plus(secret, safe=""),
                }
            )
        self._whole = sorted(values, key=len, reverse=True)
        self._slices = {
            value[i : i + MIN_SLICE] for value in values for i in range(len(value) - MIN_SLICE + 1)
        }

    def __call__(self, text: str) -> str:
        for secret in self._whole:
            if secret in text:
                text = text.replace(secret, MASK)
        if self._slices and len(text) >= MIN_SLICE:
            text = self._mask_slices(text)
        return _CREDENTIALS.sub(_keep_name, text)

    def _mask_slices(self, text: str) -> str:
        """Every run of text covered by slices of a secret becomes one mask."""
        covered: list[tuple[int, int]] = []
        for i in range(len(text) - MIN_SLICE + 1):
            if text[i : i + MIN_SLICE] in self._slices:
                if covered and i <= covered[-1][1]:
                    covered[-1] = (covered[-1][0], i + MIN_SLICE)
                else:
                    covered.append((i, i + MIN_SLICE))
        if not covered:
            return text
        parts, last = [], 0
        for start, end in covered:
            parts += [text[last:start], MASK]
            last = end
        return "".join([*parts, text[last:]])


def _keep_name(match: re.Match[str]) -> str:
    return (match["keep"] or match["keep2"] or "") + MASK


RecordFactory = Callable[..., logging.LogRecord]


class RedactingRecordFactory:
    """A log record factory that scrubs each record as it is made (see the module doc)."""

    def __init__(self, base: RecordFactory, redact: Redactor) -> None:
        self.base = base
        self.redact = redact

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.base(*args, **kwargs)
        scrub(record, self.redact)
        return record


def scrub(record: logging.LogRecord, redact: Callable[[str], str]) -> None:
    """Replace the record's message (formatted now), traceback and stack with scrubbed text."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: logging reports it when the record is emitted
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install_redaction(secrets: Iterable[str]) -> Redactor:
    """Make every record of the process scrubbed of ``secrets`` (replacing an earlier set)."""
    redact = Redactor(secrets)
    current = logging.getLogRecordFactory()
    base = current.base if isinstance(current, RedactingRecordFactory) else current
    logging.setLogRecordFactory(RedactingRecordFactory(base, redact))
    return redact


class RedactSecrets(logging.Filter):
    """Replaces any configured secret value that reaches a log record with ``***`` (for a
    handler that may see records made before :func:`install_redaction`)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        scrub(record, self._redact)
        return True


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record arrives (runners may swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(level: str, secrets: Iterable[SecretStr | None] = ()) -> None:
    """Configure the root logger once for the process."""
    values = [s.get_secret_value() for s in secrets if s is not None]
    install_redaction(values)
    handler = StderrHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries log request headers (tokens) at DEBUG; keep them at INFO (they are
    # scrubbed anyway: this keeps the log readable).
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
