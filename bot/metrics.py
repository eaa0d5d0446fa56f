"""Prometheus metrics (served at ``/metrics``): the engine's :class:`core.ports.Metrics`."""

from __future__ import annotations

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


def watch_llm_circuit(is_open: Callable[[], bool]) -> None:
    """Read the breaker's state at every scrape (the gauge stays 0 without a breaker)."""
    LLM_CIRCUIT_OPEN.set_function(lambda: 1.0 if is_open() else 0.0)


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
