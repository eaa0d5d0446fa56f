"""Prometheus metrics (served at ``/metrics``): the engine's :class:`core.ports.Metrics`."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

INTERVIEWS_STARTED = Counter("interview_buddy_interviews_started_total", "Interviews started")
INTERVIEWS_ENDED = Counter("interview_buddy_interviews_ended_total", "Interviews ended", ["reason"])
TURNS = Counter("interview_buddy_turns_total", "Candidate messages handled", ["status"])
TOKENS_CHARGED = Counter("interview_buddy_tokens_charged_total", "Tokens charged to budgets")
TURN_SECONDS = Histogram(
    "interview_buddy_turn_seconds",
    "Time from taking a candidate message to the end of the reply",
    buckets=(0.5, 1, 2, 5, 10, 20, 40, 80),
)
EVALUATIONS = Counter("interview_buddy_evaluations_total", "Evaluation reports built", ["outcome"])
EVALUATION_TOKENS = Counter(
    "interview_buddy_evaluation_tokens_total",
    "Tokens spent on report evaluations (never charged to candidates)",
)
LLM_CIRCUIT_OPEN = Gauge(
    "interview_buddy_llm_circuit_open",
    "1 while the chat model's circuit breaker is open or half-open (calls fail fast), else 0",
)
JOB_LAG = Histogram(
    "interview_buddy_job_lag_seconds",
    "Seconds between a durable job's due time and its start (claimed by this process)",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
OUTBOX_QUEUED = Gauge(
    "interview_buddy_outbox_queued_updates",
    "Message edits waiting for a rate-limit slot (latest state per message; read at scrape)",
    ["platform"],
)
PLATFORM_RATE_LIMITED = Counter(
    "interview_buddy_platform_rate_limited",
    "HTTP 429 responses received from Slack or Discord (each is retried after Retry-After)",
    ["platform", "method"],
)
LLM_FIRST_TOKEN = Histogram(
    "interview_buddy_llm_first_token_seconds",
    "Seconds from sending a chat request to the model's first text",
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
LLM_STREAM = Histogram(
    "interview_buddy_llm_stream_seconds",
    "Seconds from sending a chat request to the end of its streamed reply",
    buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160),
)
EVENT_LOOP_LAG = Histogram(
    "interview_buddy_event_loop_lag_seconds",
    "How late a task sleeping on the event loop woke up (bot.loop_lag): what any task waited",
    buckets=(
        0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
        0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0,
    ),
)  # fmt: skip


GC_PAUSE = Histogram(
    "interview_buddy_gc_pause_seconds",
    "How long each garbage collection held the event loop, by generation (2: full)",
    ["generation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
GC_FROZEN = Gauge(
    "interview_buddy_gc_frozen_objects",
    "Objects built at start-up, frozen out of full collections (bot.app.run_bot)",
)
GC_FROZEN.set_function(gc.get_freeze_count)
_gc_started: list[float] = []


def _time_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[:] = [time.perf_counter()]
    elif _gc_started:
        GC_PAUSE.labels(str(info["generation"])).observe(time.perf_counter() - _gc_started[0])


def watch_gc_pauses() -> None:
    """Time every garbage collection into ``GC_PAUSE`` (once per process)."""
    if _time_gc not in gc.callbacks:
        gc.callbacks.append(_time_gc)


def watch_llm_circuit(is_open: Callable[[], bool]) -> None:
    """Read the breaker's state at every scrape (the gauge stays 0 without a breaker)."""
    LLM_CIRCUIT_OPEN.set_function(lambda: 1.0 if is_open() else 0.0)


def watch_outbox(platform: str, queued: Callable[[], int]) -> None:
    """Read a platform's queued edits at every scrape."""
    OUTBOX_QUEUED.labels(platform).set_function(lambda: float(queued()))


def count_rate_limited(platform: str) -> Callable[[str], None]:
    """What an adapter calls with the method (or route) of each 429 it receives."""
    return lambda method: PLATFORM_RATE_LIMITED.labels(platform, method).inc()


def observe_llm(first_token_s: float | None, stream_s: float) -> None:
    """One streamed chat call: to its first text (None: none came), and to its end."""
    if first_token_s is not None:
        LLM_FIRST_TOKEN.observe(first_token_s)
    LLM_STREAM.observe(stream_s)


class PrometheusMetrics:
    """Counts what the engine reports into the process's Prometheus registry."""

    def interview_started(self) -> None:
        INTERVIEWS_STARTED.inc()

    def interview_ended(self, reason: str) -> None:
        INTERVIEWS_ENDED.labels(reason).inc()

    def turn_done(self, status: str, charged: int, seconds: float) -> None:
        TURNS.labels(status).inc()
        TOKENS_CHARGED.inc(charged)
        if seconds > 0:
            TURN_SECONDS.observe(seconds)

    def evaluation_done(self, outcome: str, tokens: int) -> None:
        EVALUATIONS.labels(outcome).inc()
        EVALUATION_TOKENS.inc(tokens)

    def job_started(self, kind: str, lag_s: float) -> None:
        JOB_LAG.labels(kind).observe(lag_s)
