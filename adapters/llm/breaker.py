"""A circuit breaker around a chat model: stop calling an endpoint that is down.

After ``failures`` calls in a row failed in a way that means the endpoint is down or broken
(connection errors, timeouts, 5xx, 429 once the SDK's retries are spent, a stream cut by
the network), the circuit **opens**: calls fail fast, without touching the network, for
``cooldown_s`` seconds. Then it is **half-open**: exactly one call (the probe) goes
through while the others keep failing fast; the probe's success closes the circuit, its
failure opens it for another cool-down.

The state machine (consecutive failures, threshold, closed → opened → half-opened → closed
or opened again) is purgatory's :class:`purgatory.domain.model.Context`. Around it this
module adds what the library can't do for us: the cool-down is timed by an injected clock
(purgatory reads ``time.time()`` itself, so we never ask it while the cool-down runs and
move it to half-open through its ``set_state``), only one probe at a time, and a cancelled
call (the engine stopped the stream) says nothing about the endpoint's health.

Not counted: a request the API rejects (400, 401, 404: the endpoint is up), a call the
engine cancels, a failure in ``on_delta`` (the platform, not the model). A call that fails
fast, or the failure that opened the circuit, comes back with ``outage=True`` so the engine
can tell the candidate and the interviewer (once: :mod:`core.outage`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from purgatory import CircuitBreakerFailed, ContextChanged
from purgatory.domain.model import CLOSED, HALF_OPENED, OPENED, Context, HalfOpenedState

from adapters.llm.openai_chat import (
    MSG_CONNECTION,
    MSG_CUT_OFF,
    MSG_CUT_OFF_EMPTY,
    MSG_RATE_LIMITED,
    MSG_SERVER_ERROR,
    MSG_TIMEOUT,
)
from core.ports import ChatModel, ChatRequest, ChatResult, OnDelta

log = logging.getLogger(__name__)

CIRCUIT = "llm"
DEGRADED = "degraded (circuit open)"
"""What ``/healthz`` says about the model while the circuit is not closed."""

ENDPOINT_FAILURES = frozenset(
    {
        MSG_RATE_LIMITED,  # 429 once the SDK's retries are spent
        MSG_SERVER_ERROR,  # 5xx
        MSG_TIMEOUT,
        MSG_CONNECTION,  # refused, reset, DNS
        MSG_CUT_OFF,  # the stream broke (network, or a stalled stream timed out)
        MSG_CUT_OFF_EMPTY,
    }
)
"""The gateway's errors that mean the endpoint is down or broken (see module docstring)."""

State = Literal["closed", "open", "half-open"]
_STATES: dict[str, State] = {CLOSED: "closed", OPENED: "open", HALF_OPENED: "half-open"}


def unavailable_message(failures: int) -> str:
    """What the candidate reads when a call fails fast."""
    return (
        f"The AI assistant is unavailable right now (it failed {failures} times in a row); "
        "your message was not charged. Please try again in a minute."
    )


def endpoint_failed(result: ChatResult) -> bool:
    """Does this result count towards opening the circuit? (The OpenAI gateway's errors.)"""
    return result.error in ENDPOINT_FAILURES


class EndpointDown(Exception):
    """What the breaker records in purgatory's state machine for a counted failure."""


class CircuitBreakerChatModel:
    """:class:`core.ports.ChatModel` that wraps another one with a circuit breaker.

    One breaker per process (its state lives in memory); ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        inner: ChatModel,
        *,
        failures: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        counts: Callable[[ChatResult], bool] = endpoint_failed,
        on_change: Callable[[State], None] | None = None,
    ) -> None:
        if failures < 1:
            raise ValueError(f"failures must be at least 1, not {failures}")
        if cooldown_s <= 0:
            raise ValueError(f"cooldown_s must be positive, not {cooldown_s}")
        self.label = inner.label
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._inner = inner
        self._clock = clock
        self._counts = counts
        self._on_change = on_change
        self._context = Context(CIRCUIT, threshold=failures, ttl=cooldown_s)
        self._streak = 0  # counted failures in a row (recorded ones)
        self._opened_at = 0.0  # by ``clock``
        self._probing = False  # the half-open probe is in flight
        self._generation = 0  # bumped on every state change: late verdicts are dropped

    @property
    def inner(self) -> ChatModel:
        return self._inner

    @property
    def state(self) -> State:
        """``open`` stays ``open`` after the cool-down until the next call probes."""
        return _STATES[self._context.state]

    @property
    def is_open(self) -> bool:
        """Degraded: open, or half-open and not yet proven healthy by a probe."""
        return self._context.state != CLOSED

    @property
    def consecutive_failures(self) -> int:
        return self._streak

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        """Call the wrapped model unless the circuit is open; never raises for API failures."""
        admitted = self._admit()
        if admitted is None:
            return ChatResult(
                text="", usage=None, error=unavailable_message(self._streak), outage=True
            )
        generation, probe = admitted
        received = False

        async def relay(delta: str) -> None:
            nonlocal received
            received = True
            await on_delta(delta)

        try:
            result = await self._inner.stream_chat(request, relay)
        except BaseException:
            # Cancelled by the engine (deadline, pause, shutdown) or ``on_delta`` failed:
            # text that arrived proves the endpoint works; otherwise we learned nothing.
            if received:
                self._record(generation, failed=False)
            raise
        finally:
            if probe:
                self._probing = False
        failed = self._counts(result)
        self._record(generation, failed=failed)
        if failed and self.is_open:
            return replace(result, outage=True)
        return result

    # ------------------------------------------------------------------ the state machine

    def _admit(self) -> tuple[int, bool] | None:
        """``(generation, is_probe)`` if this call may go out, else None (fail fast)."""
        context = self._context
        if context.state == OPENED:
            if self._clock() - self._opened_at < self.cooldown_s:
                return None
            context.set_state(HalfOpenedState())
            self._drain()
        if context.state == HALF_OPENED:
            if self._probing:
                return None
            self._probing = True
            log.info("LLM circuit half-open: probing the endpoint with one call")
        context.handle_new_request()  # closed and half-opened let it through
        return self._generation, context.state == HALF_OPENED

    def _record(self, generation: int, *, failed: bool) -> None:
        if generation != self._generation:
            return  # admitted before the state changed: it says nothing about the new state
        if failed:
            self._streak += 1
            self._context.handle_exception(EndpointDown(f"{self._streak} in a row"))
        else:
            self._streak = 0
            self._context.handle_end_request()
        self._drain()

    def _drain(self) -> None:
        """Consume purgatory's events (they would pile up otherwise)."""
        messages, self._context.messages = self._context.messages, []
        for event in messages:
            if isinstance(event, CircuitBreakerFailed):
                log.info("LLM call failed (%d in a row)", event.failure_count)
            elif isinstance(event, ContextChanged):
                self._generation += 1
                state = _STATES[event.state]
                if state == "open":
                    self._opened_at = self._clock()
                    log.warning(
                        "LLM circuit open after %d failures in a row: failing fast for %g s",
                        self._streak,
                        self.cooldown_s,
                    )
                elif state == "closed":
                    log.info("LLM circuit closed: the endpoint answers again")
                if self._on_change is not None:
                    self._on_change(state)
