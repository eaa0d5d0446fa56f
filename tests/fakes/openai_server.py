"""A fake OpenAI Chat Completions server for tests (real HTTP, real wire format).

Start it on 127.0.0.1 with a random port and point the real SDK at ``fake.base_url``::

    async with FakeOpenAI() as fake:
        client = AsyncOpenAI(api_key="test-key", base_url=fake.base_url)
        fake.replies.append("Hello!")
        fake.fail_with(status=429, retry_after=0.01)  # the next request only

Usage is counted with the real encodings (:class:`core.tokens.TokenCounter`): prompt tokens
are ``count_messages`` of the request's messages, completion tokens are the tokens actually
generated (the reply, cut to ``max_completion_tokens`` / ``max_tokens``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web

from core.tokens import TokenCounter
from tests.fakes.local_server import LocalServer

SYSTEM_FINGERPRINT = "fp_fake0001"
FILLER = "This is a scripted answer from the fake model, repeated to make it long. "


@dataclass(frozen=True)
class _Fault:
    """One injected failure, consumed by one request."""

    kind: str  # "status" | "slow" | "cut"
    status: int = 500
    retry_after: float | None = None
    retry_after_ms: int | None = None
    message: str | None = None
    delay: float = 0.0
    n_chunks: int = 0


def default_reply(last_user_message: str) -> str:
    """The deterministic reply used when no canned reply is queued (about 150 tokens)."""
    topic = " ".join(last_user_message.split()[:12]) or "nothing"
    return f"You asked about: {topic}. " + FILLER * 10


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> str:
    error = {"message": message, "type": type_, "param": param, "code": code}
    return json.dumps({"error": error})


class FakeOpenAI(LocalServer):
    """An aiohttp server answering ``POST /v1/chat/completions`` like the OpenAI API.

    Controls (each failure applies to the next request; ``times`` to the next N):

    - ``replies``: queue of canned reply texts (``replies.append("...")``); when empty the
      reply is :func:`default_reply` of the last user message.
    - ``fail_with(status, retry_after=None, retry_after_ms=None, message=None, times=1)``
    - ``slow_first_byte(seconds, times=1)``: delay before the response headers.
    - ``cut_stream_after(n_chunks, times=1)``: send ``n_chunks`` content chunks, then drop
      the connection (no usage chunk, no ``[DONE]``).
    - ``tokens_per_chunk`` and ``chunk_delay`` shape the stream.

    Records every parsed request body in ``requests`` and its headers in ``request_headers``.
    """

    def __init__(self, *, tokens_per_chunk: int = 3, chunk_delay: float = 0.0) -> None:
        self.replies: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        self.tokens_per_chunk = tokens_per_chunk
        self.chunk_delay = chunk_delay
        self._faults: deque[_Fault] = deque()
        self._ids = itertools.count(1)

    # -- lifecycle -----------------------------------------------------------------

    # Cancel handlers whose client went away (e.g. after a client-side timeout).
    runner_options: ClassVar[dict[str, Any]] = {
        "handler_cancellation": True,
        "shutdown_timeout": 1.0,
    }

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        return app

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- failure injection ---------------------------------------------------------

    def fail_with(
        self,
        status: int = 500,
        *,
        retry_after: float | None = None,
        retry_after_ms: int | None = None,
        message: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with an error status (429 adds rate-limit body)."""
        fault = _Fault(
            "status",
            status=status,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            message=message,
        )
        self._faults.extend([fault] * times)

    def slow_first_byte(self, seconds: float, *, times: int = 1) -> None:
        """Wait ``seconds`` before sending the response headers of the next requests."""
        self._faults.extend([_Fault("slow", delay=seconds)] * times)

    def cut_stream_after(self, n_chunks: int, *, times: int = 1) -> None:
        """Drop the connection after ``n_chunks`` content chunks of the next streams."""
        self._faults.extend([_Fault("cut", n_chunks=n_chunks)] * times)

    # -- the endpoint --------------------------------------------------------------

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[len("Bearer ") :].strip():
            return self._error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                None,
            )
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return self._error(
                400,
                "We could not parse the JSON body of your request.",
                "invalid_request_error",
                None,
            )
        if not isinstance(body, dict):
            return self._error(
                400, "The request body must be a JSON object.", "invalid_request_error", None
            )
        self.requests.append(body)
        self.request_headers.append(dict(request.headers))

        invalid = self._validate(body)
        if invalid is not None:
            return invalid

        fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.kind == "status":
            return self._injected_status(fault)
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)

        model: str = body["model"]
        counter = TokenCounter(model)
        messages = [
            {k: v for k, v in m.items() if k in ("role", "content", "name")}
            for m in body["messages"]
        ]
        prompt_tokens = counter.count_messages(messages)
        reply = self.replies.popleft() if self.replies else default_reply(_last_user(messages))
        tokens = counter.encode(reply)
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        finish_reason = "stop"
        if limit is not None and len(tokens) > limit:
            tokens, finish_reason = tokens[:limit], "length"
        usage = _usage(prompt_tokens, len(tokens))
        completion_id = f"chatcmpl-fake{next(self._ids):06d}"

        if not body.get("stream"):
            text = counter.encoding.decode(tokens)
            return web.json_response(_completion(completion_id, model, text, finish_reason, usage))

        pieces = _split(counter, tokens, self.tokens_per_chunk)
        cut_after = fault.n_chunks if fault is not None and fault.kind == "cut" else None
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await self._stream(
            request, completion_id, model, pieces, finish_reason, usage, include_usage, cut_after
        )

    async def _stream(
        self,
        request: web.Request,
        completion_id: str,
        model: str,
        pieces: list[str],
        finish_reason: str,
        usage: dict[str, Any],
        include_usage: bool,
        cut_after: int | None,
    ) -> web.StreamResponse:
        headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        created = int(time.time())

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            data: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": choices,
            }
            if include_usage:
                data["usage"] = None
            data.update(extra)
            return f"data: {json.dumps(data)}\n\n".encode()

        def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

        await response.write(chunk(choice({"role": "assistant", "content": "", "refusal": None})))
        for index, piece in enumerate(pieces):
            if cut_after is not None and index >= cut_after:
                break
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            finish = finish_reason if index == len(pieces) - 1 else None
            await response.write(chunk(choice({"content": piece}, finish)))
        if cut_after is not None:
            # Drop the connection mid-body: the client sees an incomplete chunked response.
            if request.transport is not None:
                request.transport.abort()
            return response
        if not pieces:
            await response.write(chunk(choice({}, finish_reason)))
        if include_usage:
            await response.write(chunk([], usage=usage))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # -- helpers -------------------------------------------------------------------

    def _validate(self, body: dict[str, Any]) -> web.Response | None:
        if "model" not in body:
            return self._error(
                400, "you must provide a model parameter", "invalid_request_error", None
            )
        if not isinstance(body["model"], str) or not body["model"]:
            return self._error(
                400,
                "Invalid value for 'model': expected a string.",
                "invalid_request_error",
                "invalid_type",
                "model",
            )
        messages = body.get("messages")
        if messages is None:
            return self._error(
                400,
                "Missing required parameter: 'messages'.",
                "invalid_request_error",
                "missing_required_parameter",
                "messages",
            )
        if not isinstance(messages, list) or not messages:
            return self._error(
                400,
                "Invalid 'messages': empty array. Expected an array with minimum length 1.",
                "invalid_request_error",
                "empty_array",
                "messages",
            )
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or "role" not in message:
                return self._error(
                    400,
                    f"Missing required parameter: 'messages[{i}].role'.",
                    "invalid_request_error",
                    "missing_required_parameter",
                    f"messages[{i}].role",
                )
            if not isinstance(message.get("content"), str):
                return self._error(
                    400,
                    f"Invalid type for 'messages[{i}].content': expected a string.",
                    "invalid_request_error",
                    "invalid_type",
                    f"messages[{i}].content",
                )
        for param in ("max_completion_tokens", "max_tokens"):
            value = body.get(param)
            if value is not None and (not isinstance(value, int) or value < 1):
                return self._error(
                    400,
                    f"Invalid '{param}': integer below minimum value. Expected a value >= 1.",
                    "invalid_request_error",
                    "integer_below_min_value",
                    param,
                )
        return None

    def _injected_status(self, fault: _Fault) -> web.Response:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        if fault.status == 429:
            message = fault.message or (
                "Rate limit reached for requests. Please try again in a moment."
            )
            return self._error(429, message, "requests", "rate_limit_exceeded", headers=headers)
        if fault.status >= 500:
            message = fault.message or "The server had an error while processing your request."
            return self._error(fault.status, message, "server_error", None, headers=headers)
        message = fault.message or f"Injected error {fault.status}."
        return self._error(fault.status, message, "invalid_request_error", None, headers=headers)

    @staticmethod
    def _error(
        status: int,
        message: str,
        type_: str,
        code: str | None,
        param: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        return web.Response(
            status=status,
            text=_error_body(message, type_, code, param),
            content_type="application/json",
            headers=headers,
        )


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def _split(counter: TokenCounter, tokens: list[int], per_chunk: int) -> list[str]:
    """Decode ``tokens`` into text pieces of about ``per_chunk`` tokens each.

    A piece boundary is only placed where the decoded prefix is whole text (never inside
    a multi-byte character), so the pieces always join to the decoded completion.
    """
    pieces: list[str] = []
    emitted = ""
    end = 0
    while end < len(tokens):
        end = min(end + max(1, per_chunk), len(tokens))
        prefix = counter.encoding.decode(tokens[:end])
        if end < len(tokens) and "\ufffd" in prefix[len(emitted) :]:
            continue
        pieces.append(prefix[len(emitted) :])
        emitted = prefix
    return pieces


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _completion(
    completion_id: str, model: str, text: str, finish_reason: str, usage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
