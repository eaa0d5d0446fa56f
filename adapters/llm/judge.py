"""The AI judge: one structured-outputs call per evaluation, never raising for API failures.

The answer's schema is :class:`core.evaluation.Evaluation`, sent as a strict JSON schema by
``chat.completions.parse`` (the SDK marks every property required, adds
``additionalProperties: false`` and sets ``strict: true``). The call is made through
``with_raw_response`` so that the tokens of an answer that fails to parse are still counted.
Retrying a failed evaluation is the caller's policy; the SDK's own retries (429, 5xx,
connection errors) still apply.
"""

from __future__ import annotations

import json
import logging
from typing import Any, cast

from openai import (
    APIConnectionError,
    APIStatusError,
    AsyncOpenAI,
    BadRequestError,
    ContentFilterFinishReasonError,
    LengthFinishReasonError,
    OpenAIError,
    omit,
)
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionMessageParam
from pydantic import ValidationError

from adapters.llm.openai_chat import _api_message, _scrub
from core.evaluation import Evaluation, JudgeRequest, JudgeResult
from core.ports import Usage

log = logging.getLogger(__name__)

MSG_CUT_OFF = "the answer was cut off at the token limit"
MSG_CONTENT_FILTER = "the answer was stopped by the content filter"
MSG_INVALID = "the answer was not valid JSON for the evaluation schema"
MSG_UNREACHABLE = "the evaluation API could not be reached"
MSG_UNREADABLE = "the evaluation API sent a response that could not be read"
MSG_UNEXPECTED = "the evaluation failed unexpectedly"
REFUSAL_CHARS = 200
API_MESSAGE_CHARS = 300


def _usage(usage: CompletionUsage | None) -> Usage | None:
    if usage is None:
        return None
    return Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)


def _usage_from_body(body: Any) -> Usage | None:
    """Usage from a raw response body (for answers the SDK could not parse)."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return Usage(prompt_tokens=prompt, completion_tokens=completion)
    return None


def _temperature_unsupported(exc: BadRequestError) -> bool:
    """The 400 a model answers when it only accepts its default temperature."""
    message = _api_message(exc).lower()
    about_temperature = exc.param == "temperature" or "'temperature'" in message
    return about_temperature and (exc.code == "unsupported_value" or "unsupported" in message)


def api_failed_message(exc: Exception) -> str:
    """A short reason, fit for a report, for a call that got no answer."""
    if isinstance(exc, APIStatusError):
        detail = _api_message(exc)
        if len(detail) > API_MESSAGE_CHARS:
            detail = detail[: API_MESSAGE_CHARS - 1] + "…"
        return f"the evaluation API failed (HTTP {exc.status_code}: {detail})"
    if isinstance(exc, APIConnectionError):  # APITimeoutError is a subclass
        return MSG_UNREACHABLE
    if isinstance(exc, OpenAIError):  # e.g. APIResponseValidationError
        return MSG_UNREADABLE
    return MSG_UNEXPECTED


class OpenAIJudge:
    """:class:`core.ports.Judge` over Chat Completions structured outputs."""

    label: str | None = None

    def __init__(self, client: AsyncOpenAI) -> None:
        """Use ``client`` (its ``timeout`` and ``max_retries`` apply to every call)."""
        self._client = client
        self._default_temperature_only: set[str] = set()

    async def evaluate(self, request: JudgeRequest) -> JudgeResult:
        """Ask for an :class:`Evaluation` at temperature 0; failures become ``error``.

        A model that accepts only its default temperature is asked again once without
        one, and from then on never sent one.
        """
        try:
            return await self._evaluate(request)
        except Exception as exc:  # _evaluate handles what it expects; be total anyway
            self._log_failure(request.model, exc)
            return JudgeResult(None, None, error=api_failed_message(exc))

    async def _evaluate(self, request: JudgeRequest) -> JudgeResult:
        messages = cast("list[ChatCompletionMessageParam]", [dict(m) for m in request.messages])
        send_temperature = request.model not in self._default_temperature_only
        try:
            try:
                raw = await self._client.chat.completions.with_raw_response.parse(
                    model=request.model,
                    messages=messages,
                    response_format=Evaluation,
                    temperature=0 if send_temperature else omit,
                    max_completion_tokens=request.max_completion_tokens,
                )
            except BadRequestError as exc:
                if not (send_temperature and _temperature_unsupported(exc)):
                    raise
                log.info("model %s accepts only its default temperature", request.model)
                self._default_temperature_only.add(request.model)
                raw = await self._client.chat.completions.with_raw_response.parse(
                    model=request.model,
                    messages=messages,
                    response_format=Evaluation,
                    max_completion_tokens=request.max_completion_tokens,
                )
        except (APIStatusError, APIConnectionError) as exc:
            self._log_failure(request.model, exc)
            return JudgeResult(None, None, error=api_failed_message(exc))

        try:
            completion = raw.parse()
        except LengthFinishReasonError as exc:
            return JudgeResult(None, _usage(exc.completion.usage), error=MSG_CUT_OFF)
        except ContentFilterFinishReasonError as exc:
            usage = _usage(exc.completion.usage) if exc.completion is not None else None
            return JudgeResult(None, usage, error=MSG_CONTENT_FILTER)
        except (ValidationError, json.JSONDecodeError) as exc:
            log.warning("judge answer did not fit the schema: model=%s %s", request.model, exc)
            try:
                usage = _usage_from_body(raw.http_response.json())
            except ValueError:
                usage = None
            return JudgeResult(None, usage, error=MSG_INVALID)

        usage = _usage(completion.usage)
        if not completion.choices:
            return JudgeResult(None, usage, error=MSG_INVALID)
        message = completion.choices[0].message
        if message.refusal:
            return JudgeResult(
                None, usage, error=f"the model refused: {message.refusal[:REFUSAL_CHARS]}"
            )
        if message.parsed is None:
            return JudgeResult(None, usage, error=MSG_INVALID)
        return JudgeResult(message.parsed, usage)

    @staticmethod
    def _log_failure(model: str, exc: Exception) -> None:
        """Log a failed call: type, status, request id and the API's message (no API key)."""
        if isinstance(exc, APIStatusError):
            detail = f"status={exc.status_code} request_id={exc.request_id}: {_api_message(exc)}"
        else:
            cause = exc.__cause__
            detail = _scrub(str(exc) + (f" ({type(cause).__name__}: {cause})" if cause else ""))
        log.warning(
            "OpenAI judge call failed: model=%s %s %s",
            model,
            type(exc).__name__,
            detail,
            exc_info=not isinstance(exc, OpenAIError),
        )
