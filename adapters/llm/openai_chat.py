"""The OpenAI gateway: one streamed chat completion per call, never raising for API failures.

Retries (429, 408, 409, 5xx, connection errors and timeouts) are the openai SDK's own: they
happen only before the response stream opens, honouring ``Retry-After`` / ``retry-after-ms``
(up to 2 minutes; a longer one is not retried at all). A stream that breaks mid-way is never
retried, since the tokens already generated are billed: the partial text is returned with an
error and ``usage=None``. ``on_latency`` (the bot's metrics) is told, for every call whose stream
opened, the seconds to the first text (None: none came) and to the end of the stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, Literal

from openai import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncOpenAI,
    OpenAIError,
    RateLimitError,
    Timeout,
    omit,
)

from core.ports import ChatRequest, ChatResult, OnDelta, Usage

log = logging.getLogger(__name__)

TokenLimitParam = Literal["max_completion_tokens", "max_tokens"]
TOKEN_LIMIT_PARAMS: tuple[TokenLimitParam, ...] = ("max_completion_tokens", "max_tokens")
LatencyObserver = Callable[[float | None, float], None]  # (to the first text, to the end)

DONE: Final[dict[str, Any]] = {}
"""What :func:`_parse_event` returns for ``data: [DONE]``, the end of the stream."""


class StreamError(OpenAIError):
    """The server sent an error in the middle of the stream (an ``error`` event)."""


def _parse_event(line: str) -> dict[str, Any] | None:
    """One line of the server-sent event stream: a chunk, :data:`DONE`, or None (blank
    lines, comments, ``event:`` and other fields). Errors in the stream raise, as the SDK's
    own stream does."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data.startswith("[DONE]"):
        return DONE
    chunk = json.loads(data)
    if not isinstance(chunk, dict):
        raise StreamError(f"unexpected stream data: {data[:80]}")
    if chunk.get("error"):
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise StreamError(f"error in the stream: {message}")
    return chunk


DRAIN_S = 1.0
"""How long the rest of a stream after ``[DONE]`` may take to arrive (it is the body's end)."""


async def _read_to_the_end(lines: AsyncIterator[str]) -> None:
    """Read what follows ``[DONE]``: only a response read to its end gives its connection
    back to the pool. One closed early closes the connection, and the next call paid a new
    TCP (and TLS) handshake: against a remote API, tens of milliseconds before its first
    token. A server that sends more, or nothing for ``DRAIN_S``, loses the connection."""
    try:
        async with asyncio.timeout(DRAIN_S):
            async for _ in lines:
                pass
    except Exception:  # the reply is complete; only the connection's reuse is lost
        log.debug("reading past [DONE] failed; the connection is closed", exc_info=True)


PLACEHOLDER_API_KEY = "no-key-set"
"""Sent to an OpenAI-compatible server when no key is configured (local servers ignore it)."""

MSG_RATE_LIMITED = (
    "The AI assistant is rate-limited right now; please send your message again in a minute."
)
MSG_SERVER_ERROR = (
    "The AI assistant had a server error; please send your message again in a moment."
)
MSG_TIMEOUT = "The AI assistant did not answer in time; please send your message again in a moment."
MSG_CONNECTION = (
    "The AI assistant could not be reached (connection error); please send your message "
    "again in a moment."
)
MSG_CUT_OFF = (
    "The AI assistant's reply was cut off by a connection problem; what arrived is shown "
    "above. Please send your message again if you need the rest."
)
MSG_CUT_OFF_EMPTY = (
    "The AI assistant's reply was cut off by a connection problem before any text arrived; "
    "please send your message again."
)
MSG_UNEXPECTED = "The AI assistant failed unexpectedly; please send your message again."

_SECRET = re.compile(r"\b(sk-|sess-)[A-Za-z0-9_\-*.]{4,}")


def _scrub(text: str) -> str:
    """Mask anything that looks like an API key (the API echoes part of a wrong key)."""
    return _SECRET.sub(r"\1***", text)


def _api_message(exc: APIStatusError) -> str:
    """The API's own error message (``error.message`` in the body), else the SDK's."""
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message:
            return _scrub(message)
    return _scrub(exc.message)


def _request_failed_message(exc: Exception) -> str:
    """A candidate-facing message for a call that failed before the stream opened."""
    if isinstance(exc, RateLimitError):
        return MSG_RATE_LIMITED
    if isinstance(exc, APIStatusError):
        if exc.status_code >= 500:
            return MSG_SERVER_ERROR
        return (
            f"The AI assistant rejected the request (HTTP {exc.status_code}: "
            f"{_api_message(exc)}). Please tell the interviewer."
        )
    if isinstance(exc, APITimeoutError):  # before APIConnectionError: it is a subclass
        return MSG_TIMEOUT
    if isinstance(exc, APIConnectionError):
        return MSG_CONNECTION
    return MSG_UNEXPECTED


class OpenAIChatModel:
    """:class:`core.ports.ChatModel` over the OpenAI Chat Completions streaming API."""

    label: str | None = None

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        token_limit_param: TokenLimitParam = "max_completion_tokens",
        on_latency: LatencyObserver | None = None,
    ) -> None:
        """Use ``client`` (its ``timeout`` and ``max_retries`` apply to every call).

        ``token_limit_param`` is ``"max_tokens"`` for OpenAI-compatible servers that do not
        know ``max_completion_tokens``.
        """
        if token_limit_param not in TOKEN_LIMIT_PARAMS:
            raise ValueError(
                f"token_limit_param must be one of {TOKEN_LIMIT_PARAMS}, not {token_limit_param!r}"
            )
        self._client = client
        self._token_limit_param: TokenLimitParam = token_limit_param
        self._on_latency = on_latency

    @classmethod
    def from_settings(
        cls,
        api_key: str | None,
        base_url: str | None,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        token_limit_param: str = "max_completion_tokens",
        on_latency: LatencyObserver | None = None,
    ) -> OpenAIChatModel:
        """Build the client. ``None`` falls back to ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``.

        Local servers (Ollama, LM Studio, vLLM) need no key: with a ``base_url`` and no key
        anywhere, a placeholder key is sent (and said once in the log). ``timeout_s`` bounds
        connecting, sending, the wait for the first byte and every gap between stream
        chunks (not the whole reply). Raises ``openai.OpenAIError`` when neither a key nor a
        base URL can be found, and ``ValueError`` for an unknown ``token_limit_param``.
        """
        if token_limit_param not in TOKEN_LIMIT_PARAMS:
            raise ValueError(
                f"token_limit_param must be one of {TOKEN_LIMIT_PARAMS}, not {token_limit_param!r}"
            )
        if not api_key and not os.environ.get("OPENAI_API_KEY") and base_url:
            log.info(
                "OPENAI_API_KEY is not set: sending a placeholder key to %s "
                "(local servers such as Ollama, LM Studio and vLLM need none)",
                base_url,
            )
            api_key = PLACEHOLDER_API_KEY
        client = AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            max_retries=max_retries,
        )
        return cls(client, token_limit_param=token_limit_param, on_latency=on_latency)

    @property
    def client(self) -> AsyncOpenAI:
        """The configured client (the report judge shares it)."""
        return self._client

    async def aclose(self) -> None:
        """Close the underlying HTTP client."""
        await self._client.close()

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        """Stream the reply into ``on_delta``; API and network failures become ``error``.

        Exceptions raised by ``on_delta`` itself propagate (after the stream is closed).
        """
        limit = request.max_completion_tokens
        messages = [dict(m) for m in request.messages]
        started = time.monotonic()
        first_text: float | None = None
        try:
            # The raw response: the SDK still sends, retries and raises for error statuses,
            # but each chunk is read with json.loads instead of being validated into its
            # pydantic model (about a third of a busy bot's CPU went there).
            # The messages travel in ``extra_body``, which the SDK merges over the typed
            # parameters as they are: as ``messages=`` it would walk every message of the
            # conversation through its TypedDict transform first (6 ms of CPU a call at 20
            # turns, growing with the conversation), which changes nothing in plain
            # role/content strings.
            opened = self._client.chat.completions.with_streaming_response.create(
                model=request.model,
                messages=[],
                extra_body={"messages": messages},
                stream=True,
                stream_options={"include_usage": True},
                temperature=request.temperature if request.temperature is not None else omit,
                max_completion_tokens=(
                    limit if self._token_limit_param == "max_completion_tokens" else omit
                ),
                max_tokens=limit if self._token_limit_param == "max_tokens" else omit,
            )
            response = await opened.__aenter__()
        except Exception as exc:  # the SDK raises OpenAIError subclasses; be total anyway
            self._log_failure("request failed", request.model, exc)
            return ChatResult(text="", usage=None, error=_request_failed_message(exc))

        parts: list[str] = []
        usage: Usage | None = None
        finish_reason: str | None = None
        error: str | None = None
        lines = response.iter_lines()
        try:
            while True:
                try:
                    chunk = _parse_event(await anext(lines))
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    self._log_failure("stream broke", request.model, exc, received=parts)
                    usage = None
                    error = MSG_CUT_OFF if parts else MSG_CUT_OFF_EMPTY
                    break
                if chunk is None:
                    continue
                if chunk is DONE:
                    await _read_to_the_end(lines)
                    break
                reported = chunk.get("usage")
                if reported:
                    usage = Usage(
                        prompt_tokens=int(reported["prompt_tokens"]),
                        completion_tokens=int(reported["completion_tokens"]),
                    )
                for choice in chunk.get("choices") or ():
                    if choice.get("index", 0) != 0:
                        continue
                    if choice.get("finish_reason") is not None:
                        finish_reason = str(choice["finish_reason"])
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        if first_text is None:
                            first_text = time.monotonic() - started
                        parts.append(content)
                        await on_delta(content)
        finally:
            try:
                await opened.__aexit__(None, None, None)
            except Exception:  # closing a broken connection must not mask the result
                log.debug("closing the OpenAI stream failed", exc_info=True)
            if self._on_latency is not None:
                self._on_latency(first_text, time.monotonic() - started)

        return ChatResult(
            text="".join(parts),
            usage=usage,
            error=error,
            reached_model=True,
            finish_reason=finish_reason,
        )

    @staticmethod
    def _log_failure(
        what: str, model: str, exc: Exception, *, received: list[str] | None = None
    ) -> None:
        """Log a failed call: type, status, request id and the API's message (no API key)."""
        if isinstance(exc, APIStatusError):
            detail = f"status={exc.status_code} request_id={exc.request_id}: {_api_message(exc)}"
        else:
            cause = exc.__cause__
            detail = _scrub(str(exc) + (f" ({type(cause).__name__}: {cause})" if cause else ""))
        if received is not None:
            detail += f" after {sum(len(p) for p in received)} chars"
        log.warning(
            "OpenAI %s: model=%s %s %s",
            what,
            model,
            type(exc).__name__,
            detail,
            exc_info=not isinstance(exc, OpenAIError),
        )
