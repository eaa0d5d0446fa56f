"""Prometheus metrics the engine records (served at ``/metrics`` by the bot)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

INTERVIEWS_STARTED = Counter("interview_buddy_interviews_started_total", "Interviews started")
INTERVIEWS_ENDED = Counter("interview_buddy_interviews_ended_total", "Interviews ended", ["reason"])
TURNS = Counter("interview_buddy_turns_total", "Candidate messages handled", ["status"])
TOKENS_CHARGED = Counter("interview_buddy_tokens_charged_total", "Tokens charged to budgets")
TURN_SECONDS = Histogram(
    "interview_buddy_turn_seconds",
    "Time from a candidate message to the end of the reply",
    buckets=(0.5, 1, 2, 5, 10, 20, 40, 80),
)
