"""A built-in offline model for the console try-out: deterministic, streamed, honestly counted."""

from __future__ import annotations

import asyncio
import hashlib

from core.ports import ChatRequest, ChatResult, OnDelta, Usage
from core.tokens import TokenCounter

OFFLINE_LABEL = "offline model (no API key set; replies are canned, not AI)"

_OPENERS = (
    "Good question. Let's reason about it step by step.",
    "Here is one way to think about it.",
    "Let's break that down.",
    "A useful first step is to restate the problem.",
)
_BODY = (
    "Start from the simplest correct solution and measure what it costs: for most interview "
    "problems that is a brute force over all pairs or all orderings. Then look for the repeated "
    "work. A hash map often turns a nested loop into a single pass, because a lookup replaces a "
    "scan. Write down the invariant your loop keeps, check it on a tiny example, and only then "
    "think about edge cases: empty input, duplicates, negative numbers and very large values. "
    "Finally, name the time and space complexity and the tests you would write first."
)


class OfflineChatModel:
    """Streams a canned reply chosen from the prompt; usage is counted with the real encoding."""

    label: str | None = OFFLINE_LABEL

    def __init__(self, chunk_tokens: int = 6, delay_s: float = 0.0) -> None:
        self._chunk_tokens = chunk_tokens
        self._delay_s = delay_s

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        counter = TokenCounter(request.model)
        prompt_tokens = counter.count_messages(request.messages)
        question = request.messages[-1]["content"] if request.messages else ""
        digest = int(hashlib.sha256(question.encode()).hexdigest(), 16)
        text = f"{_OPENERS[digest % len(_OPENERS)]} {_BODY}"
        tokens = counter.encode(text)
        finish = "stop"
        if len(tokens) > request.max_completion_tokens:
            tokens = tokens[: request.max_completion_tokens]
            finish = "length"
        sent = ""
        for start in range(0, len(tokens), self._chunk_tokens):
            # Decode cumulatively so multi-byte characters split across chunks stay intact.
            upto = counter.encoding.decode(tokens[: start + self._chunk_tokens])
            delta, sent = upto[len(sent) :], upto
            if delta:
                await on_delta(delta)
            if self._delay_s:
                await asyncio.sleep(self._delay_s)
        return ChatResult(
            text=sent,
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(tokens)),
            reached_model=True,
            finish_reason=finish,
        )
