"""The OpenAI gateway: one streamed chat completion per call, never raising for API failures.

Retries (429, 408, 409, 5xx, connection errors and timeouts) are the openai SDK's own: they
happen only before the response stream opens, honouring ``Retry-After`` / ``retry-after-ms``
(up to 2 minutes; a longer one is not retried at all). A stream that breaks mid-way is never
retried, since the tokens already generated are billed: the partial text is returned with an
error and ``usage=None``.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Literal, cast

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
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from core.ports import ChatRequest, ChatResult, OnDelta, Usage

log = logging.getLogger(__name__)

TokenLimitParam = Literal["max_completion_tokens", "max_tokens"]
TOKEN_LIMIT_PARAMS: tuple[TokenLimitParam, ...] = ("max_completion_tokens", "max_tokens")

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

    @classmethod
    def from_settings(
        cls,
        api_key: str | None,
        base_url: str | None,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        token_limit_param: str = "max_completion_tokens",
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
        return cls(client, token_limit_param=token_limit_param)

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
        messages = cast("list[ChatCompletionMessageParam]", [dict(m) for m in request.messages])
        try:
            stream = await self._client.chat.completions.create(
                model=request.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                temperature=request.temperature if request.temperature is not None else omit,
                max_completion_tokens=(
                    limit if self._token_limit_param == "max_completion_tokens" else omit
                ),
                max_tokens=limit if self._token_limit_param == "max_tokens" else omit,
            )
        except Exception as exc:  # the SDK raises OpenAIError subclasses; be total anyway
            self._log_failure("request failed", request.model, exc)
            return ChatResult(text="", usage=None, error=_request_failed_message(exc))

        parts: list[str] = []
        usage: Usage | None = None
        finish_reason: str | None = None
        error: str | None = None
        try:
            while True:
                try:
                    chunk: ChatCompletionChunk = await anext(stream)
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    self._log_failure("stream broke", request.model, exc, received=parts)
                    usage = None
                    error = MSG_CUT_OFF if parts else MSG_CUT_OFF_EMPTY
                    break
                if chunk.usage is not None:
                    usage = Usage(
                        prompt_tokens=chunk.usage.prompt_tokens,
                        completion_tokens=chunk.usage.completion_tokens,
                    )
                for choice in chunk.choices:
                    if choice.index != 0:
                        continue
                    if choice.finish_reason is not None:
                        finish_reason = choice.finish_reason
                    content = choice.delta.content
                    if content:
                        parts.append(content)
                        await on_delta(content)
        finally:
            try:
                await stream.close()
            except Exception:  # closing a broken connection must not mask the result
                log.debug("closing the OpenAI stream failed", exc_info=True)

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
