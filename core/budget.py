"""Pure budget rules: warning thresholds, completion caps, time-warning moments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.models import Interview, Status


@dataclass(frozen=True)
class Threshold:
    key: str
    fraction: float
    level: str
    message: str


# Tokens: fraction of the budget used. Time: fraction of the allowed time left.
TOKEN_THRESHOLDS = (
    Threshold("tokens_75", 0.75, "notice", "75% of the token budget is used."),
    Threshold("tokens_90", 0.90, "warning", "90% of the token budget is used."),
)
TIME_THRESHOLDS = (
    Threshold("time_25", 0.25, "notice", "25% of the time is left."),
    Threshold("time_10", 0.10, "warning", "10% of the time is left."),
    Threshold("time_5", 0.05, "critical", "5% of the time is left."),
)
_LEVEL_ORDER = ("ok", "notice", "warning", "critical")


def token_fraction_used(interview: Interview) -> float:
    budget = interview.total_budget
    return 1.0 if budget <= 0 else min(1.0, interview.tokens_used / budget)


def time_fraction_left(interview: Interview, now: datetime) -> float:
    allowed = interview.allowed_time_s
    return 0.0 if allowed <= 0 else min(1.0, interview.seconds_left(now) / allowed)


def crossed_thresholds(interview: Interview, now: datetime) -> list[Threshold]:
    """Every threshold whose condition holds now (sent or not)."""
    crossed = [t for t in TOKEN_THRESHOLDS if token_fraction_used(interview) >= t.fraction]
    if interview.started_at is not None:
        left = time_fraction_left(interview, now)
        crossed += [t for t in TIME_THRESHOLDS if left <= t.fraction]
    return crossed


def due_warnings(interview: Interview, now: datetime) -> list[Threshold]:
    """Crossed thresholds not yet announced, most severe last."""
    if interview.status is not Status.ACTIVE:
        return []
    return [t for t in crossed_thresholds(interview, now) if t.key not in interview.warnings_sent]


def drop_stale_warnings(interview: Interview, now: datetime) -> None:
    """After an extension, re-arm warnings whose condition no longer holds."""
    still = {t.key for t in crossed_thresholds(interview, now)}
    interview.warnings_sent = [k for k in interview.warnings_sent if k in still]


def warning_level(interview: Interview, now: datetime) -> str:
    """``ok``, ``notice``, ``warning`` or ``critical``: the worst threshold crossed now."""
    levels = [t.level for t in crossed_thresholds(interview, now)]
    return max(levels, key=_LEVEL_ORDER.index, default="ok")


def next_time_event(interview: Interview, now: datetime) -> datetime | None:
    """The next moment the engine must wake for: a time warning not yet sent, or the deadline."""
    if interview.status is not Status.ACTIVE:
        return None
    deadline = interview.deadline(now)
    if deadline is None:
        return None
    moments = [deadline]
    for threshold in TIME_THRESHOLDS:
        if threshold.key not in interview.warnings_sent:
            moment = deadline - timedelta(seconds=threshold.fraction * interview.allowed_time_s)
            moments.append(max(moment, now))
    return min(moments)


def completion_cap(tokens_left: int, prompt_tokens: int) -> int:
    """The most completion tokens a call may produce; 0 means the prompt does not fit."""
    return max(0, tokens_left - prompt_tokens)
