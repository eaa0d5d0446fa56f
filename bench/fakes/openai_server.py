"""A fake OpenAI Chat Completions server for tests (real HTTP, real wire format).

Start it on 127.0.0.1 with a random port and point the real SDK at ``fake.base_url``::

    async with FakeOpenAI() as fake:
        client = AsyncOpenAI(api_key="test-key", base_url=fake.base_url)
        fake.replies.append("Hello!")
        fake.fail_with(status=429, retry_after=0.01)  # the next request only

Usage is counted with the real encodings (:class:`core.tokens.TokenCounter`): prompt tokens
are ``count_messages`` of the request's messages, completion tokens are the tokens actually
generated (the reply, cut to ``max_completion_tokens`` / ``max_tokens``).

Structured outputs (non-streaming, ``response_format: {"type": "json_schema", ...}``)::

    fake.structured.append({"criteria": [], ...})  # sent as the JSON content
    fake.structured.append(REFUSAL)                 # or MALFORMED, TRUNCATED, CONTENT_FILTER
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web

from bench.fakes.local_server import LocalServer, client_address
from core.tokens import TokenCounter

SYSTEM_FINGERPRINT = "fp_fake0001"
FILLER = "This is a scripted answer from the fake model, repeated to make it long. "

# Scripted faults of a structured answer (entries of ``FakeOpenAI.structured``).
REFUSAL = "refusal"  # message.refusal set, content null
MALFORMED = "malformed"  # content that is not JSON
TRUNCATED = "truncated"  # finish_reason "length", content a cut-off JSON prefix
CONTENT_FILTER = "content_filter"  # finish_reason "content_filter", content null
STRUCTURED_FAULTS = (REFUSAL, MALFORMED, TRUNCATED, CONTENT_FILTER)
REFUSAL_TEXT = "I'm sorry, but I can't help with evaluating this request."
MALFORMED_TEXT = "Sure! Here is the evaluation you asked for: {criteria: [decomposition: 4"
TEMPERATURE_UNSUPPORTED = (
    "Unsupported value: 'temperature' does not support {value} with this model. "
    "Only the default (1) value is supported."
)

StructuredAnswer = dict[str, Any] | str
"""A scripted structured answer: a dict (sent as JSON), a fault marker, or raw content."""


@dataclass
class StreamTimes:
    """One streamed reply as the fake sent it: when the request arrived, when the first
    token and the last byte went out (on the fake's ``clock``), and what it said."""

    arrived: float
    prompt: str
    first_token: float | None = None
    last_byte: float | None = None
    text: str = ""


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
    - ``tokens_per_chunk`` and ``chunk_delay`` shape the stream; ``first_token_delay`` is
      the model's time to first token (after the headers, before the first content chunk;
      None: ``chunk_delay``).
      ``realistic()`` sets OpenAI-like figures: 300 ms to the first token, then 50 tokens/s.
    - ``structured``: queue of answers to non-streaming ``json_schema`` requests: a dict
      (sent as the JSON content, as is: a schema-invalid dict is sent too), one of the fault
      markers :data:`REFUSAL`, :data:`MALFORMED`, :data:`TRUNCATED`, :data:`CONTENT_FILTER`,
      or any other string (sent verbatim as the content). When empty the answer is
      ``structured_default(body)`` (same kinds) if set, else a minimal instance of the schema
      (:func:`minimal_instance`). Answers longer than the token limit are cut off
      (``finish_reason: "length"``) like replies. ``replies`` is not used for them.
      ``refusal_text`` is what a :data:`REFUSAL` says.
    - A ``json_schema`` with ``strict: true`` is checked like OpenAI does (every object has
      ``additionalProperties: false`` and lists all its properties in ``required``; the root
      is an object): otherwise 400 ``invalid_request_error`` naming the problem.
    - ``default_temperature_only``: model names that reject any ``temperature`` other than 1
      with OpenAI's 400 ``unsupported_value`` (``param: "temperature"``).

    Records every parsed request body in ``requests`` and its headers in ``request_headers``;
    every streamed reply's moments on ``clock`` in ``streams`` (:class:`StreamTimes`).
    """

    def __init__(
        self,
        *,
        tokens_per_chunk: int = 3,
        chunk_delay: float = 0.0,
        first_token_delay: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.first_token_delay = first_token_delay
        self.clock = clock
        self.streams: list[StreamTimes] = []
        self.replies: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []
        # each request's client address (host, port): one per TCP connection the client used
        self.connections: list[Any] = []
        self.tokens_per_chunk = tokens_per_chunk
        self.chunk_delay = chunk_delay
        self.structured: deque[StructuredAnswer] = deque()
        self.structured_default: Callable[[dict[str, Any]], StructuredAnswer] | None = None
        self.refusal_text = REFUSAL_TEXT
        self.default_temperature_only: set[str] = set()
        self._faults: deque[_Fault] = deque()
        self._ids = itertools.count(1)

    def realistic(self, *, ttft: float = 0.3, tokens_per_second: float = 50.0) -> None:
        """Stream like a hosted model: ``ttft`` to the first token, then ``tokens_per_second``."""
        self.first_token_delay = ttft
        self.chunk_delay = self.tokens_per_chunk / tokens_per_second

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
        arrived = self.clock()
        self.requests.append(body)
        self.request_headers.append(dict(request.headers))
        self.connections.append(client_address(request))

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
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        completion_id = f"chatcmpl-fake{next(self._ids):06d}"
        response_format = body.get("response_format")
        if (
            not body.get("stream")
            and isinstance(response_format, dict)
            and response_format.get("type") == "json_schema"
        ):
            answer = self._structured_answer(body, response_format["json_schema"]["schema"])
            return web.json_response(
                _structured_completion(
                    completion_id,
                    model,
                    counter,
                    prompt_tokens,
                    answer,
                    limit,
                    response_format,
                    self.refusal_text,
                )
            )

        reply = self.replies.popleft() if self.replies else default_reply(_last_user(messages))
        tokens = counter.encode(reply)
        finish_reason = "stop"
        if limit is not None and len(tokens) > limit:
            tokens, finish_reason = tokens[:limit], "length"
        usage = _usage(prompt_tokens, len(tokens))

        if not body.get("stream"):
            text = counter.encoding.decode(tokens)
            return web.json_response(_completion(completion_id, model, text, finish_reason, usage))

        pieces = _split(counter, tokens, self.tokens_per_chunk)
        cut_after = fault.n_chunks if fault is not None and fault.kind == "cut" else None
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        times = StreamTimes(arrived, _last_user(messages))
        self.streams.append(times)
        return await self._stream(
            request,
            completion_id,
            model,
            pieces,
            finish_reason,
            usage,
            include_usage,
            cut_after,
            times,
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
        times: StreamTimes,
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
            delay = self.chunk_delay
            if index == 0 and self.first_token_delay is not None:
                delay = self.first_token_delay
            if delay:
                await asyncio.sleep(delay)
            finish = finish_reason if index == len(pieces) - 1 else None
            await response.write(chunk(choice({"content": piece}, finish)))
            if index == 0:
                times.first_token = self.clock()
            times.text += piece
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
        times.last_byte = self.clock()
        return response

    # -- helpers -------------------------------------------------------------------

    def _structured_answer(self, body: dict[str, Any], schema: Any) -> StructuredAnswer:
        if self.structured:
            return self.structured.popleft()
        if self.structured_default is not None:
            return self.structured_default(body)
        answer = minimal_instance(schema)
        return answer if isinstance(answer, dict) else json.dumps(answer)

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
        temperature = body.get("temperature")
        if (
            body["model"] in self.default_temperature_only
            and temperature is not None
            and temperature != 1
        ):
            return self._error(
                400,
                TEMPERATURE_UNSUPPORTED.format(value=json.dumps(temperature)),
                "invalid_request_error",
                "unsupported_value",
                "temperature",
            )
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            problem = _json_schema_problem(response_format.get("json_schema"))
            if problem is not None:
                message, code, param = problem
                return self._error(400, message, "invalid_request_error", code, param)
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
    completion_id: str,
    model: str,
    text: str | None,
    finish_reason: str,
    usage: dict[str, Any],
    refusal: str | None = None,
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
                    "refusal": refusal,
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


# -- structured outputs ----------------------------------------------------------------


def _structured_completion(
    completion_id: str,
    model: str,
    counter: TokenCounter,
    prompt_tokens: int,
    answer: StructuredAnswer,
    limit: int | None,
    response_format: dict[str, Any],
    refusal_text: str,
) -> dict[str, Any]:
    """The completion carrying ``answer`` (a dict, a fault marker or raw content)."""
    if answer == REFUSAL:
        usage = _usage(prompt_tokens, counter.count_text(refusal_text))
        return _completion(completion_id, model, None, "stop", usage, refusal=refusal_text)
    if answer == CONTENT_FILTER:
        return _completion(completion_id, model, None, "content_filter", _usage(prompt_tokens, 0))
    finish_reason = "stop"
    if answer == MALFORMED:
        content = MALFORMED_TEXT
    elif answer == TRUNCATED:
        full = json.dumps(minimal_instance(response_format["json_schema"]["schema"]))
        content, finish_reason = full[: max(1, len(full) // 2)], "length"
    elif isinstance(answer, str):
        content = answer
    else:
        content = json.dumps(answer)
    tokens = counter.encode(content)
    if limit is not None and len(tokens) > limit:
        tokens, finish_reason = tokens[:limit], "length"
        content = counter.encoding.decode(tokens)
    usage = _usage(prompt_tokens, len(tokens))
    return _completion(completion_id, model, content, finish_reason, usage)


def _json_schema_problem(json_schema: Any) -> tuple[str, str | None, str] | None:
    """(message, code, param) of what OpenAI would reject in ``response_format.json_schema``."""
    if not isinstance(json_schema, dict):
        return (
            "Missing required parameter: 'response_format.json_schema'.",
            "missing_required_parameter",
            "response_format.json_schema",
        )
    name = json_schema.get("name")
    if not isinstance(name, str) or not name:
        return (
            "Missing required parameter: 'response_format.json_schema.name'.",
            "missing_required_parameter",
            "response_format.json_schema.name",
        )
    schema = json_schema.get("schema")
    if not isinstance(schema, dict):
        return (
            f"Invalid schema for response_format '{name}': schema must be a JSON object.",
            None,
            "response_format",
        )
    if json_schema.get("strict") is not True:
        return None
    if schema.get("type") != "object":
        got = json.dumps(schema.get("type"))
        return (
            f"Invalid schema for response_format '{name}': schema must be a JSON Schema of "
            f"'type: \"object\"', got 'type: {got}'.",
            None,
            "response_format",
        )
    problem = _strict_problem(schema, ())
    if problem is None:
        return None
    return f"Invalid schema for response_format '{name}': {problem}", None, "response_format"


def _strict_problem(schema: Any, path: tuple[str, ...]) -> str | None:
    """What breaks OpenAI's strict rules in ``schema`` (and its sub-schemas), if anything."""
    if not isinstance(schema, dict):
        return None
    types = schema.get("type")
    is_object = types == "object" or (isinstance(types, list) and "object" in types)
    properties = schema.get("properties")
    if is_object or isinstance(properties, dict):
        if schema.get("additionalProperties") is not False:
            return (
                f"In context={path!r}, 'additionalProperties' is required to be supplied "
                "and to be false."
            )
        keys = list(properties) if isinstance(properties, dict) else []
        required = schema.get("required")
        missing = [k for k in keys if not isinstance(required, list) or k not in required]
        if missing:
            return (
                f"In context={path!r}, 'required' is required to be supplied and to be an "
                f"array including every key in properties. Missing '{missing[0]}'."
            )
    children: list[tuple[tuple[str, ...], Any]] = []
    if isinstance(properties, dict):
        children += [((*path, "properties", k), v) for k, v in properties.items()]
    if "items" in schema:
        children.append(((*path, "items"), schema["items"]))
    for key in ("anyOf", "allOf"):
        if isinstance(schema.get(key), list):
            children += [((*path, key, str(i)), v) for i, v in enumerate(schema[key])]
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            children += [((*path, key, k), v) for k, v in schema[key].items()]
    for child_path, child in children:
        problem = _strict_problem(child, child_path)
        if problem is not None:
            return problem
    return None


def minimal_instance(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A small instance valid for ``schema``: objects with their required properties,
    strings ``""``, numbers 0 (or ``minimum``), empty arrays, the first enum value."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 32:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return minimal_instance(_resolve_ref(root, ref), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        variants = schema.get(key)
        if isinstance(variants, list) and variants:
            return minimal_instance(variants[0], root, depth + 1)
    types = schema.get("type")
    if isinstance(types, list):
        types = next((t for t in types if t != "null"), "null")
    properties = schema.get("properties")
    if types == "object" or isinstance(properties, dict):
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        keys = [k for k in properties if isinstance(required, list) and k in required]
        return {k: minimal_instance(properties[k], root, depth + 1) for k in keys}
    if types == "array":
        count = schema.get("minItems", 0)
        return [minimal_instance(schema.get("items"), root, depth + 1) for _ in range(count)]
    if types == "string":
        return "x" * int(schema.get("minLength", 0))
    if types in ("integer", "number"):
        minimum = schema.get("minimum", 0)
        return int(minimum) if types == "integer" else minimum
    if types == "boolean":
        return False
    return None


def _resolve_ref(root: Any, ref: str) -> Any:
    """A local ``$ref`` (``#/$defs/Name``)."""
    node = root
    for part in ref.removeprefix("#/").split("/"):
        if not isinstance(node, dict):
            return None
        node = node.get(part.replace("~1", "/").replace("~0", "~"))
    return node
