"""Pure budget rules: warning thresholds, completion caps, time-warning moments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.models import Interview, Status
from core.ports import ChatResult


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
# Forecast: about how many more messages fit (``fraction`` holds the count).
FORECAST_THRESHOLDS = (
    Threshold("messages_2", 2, "warning", "About 2 more messages fit."),
    Threshold("messages_1", 1, "critical", "About 1 more message fits."),
)
# Before any turn is answered, assume a question and its reply add this much (a typical
# short question and a few paragraphs of answer).
DEFAULT_TURN_GROWTH = 300
FORECAST_CAP = 99
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


def messages_that_fit(tokens_left: int, next_prompt_tokens: int, turn_growth: int) -> int:
    """About how many more messages fit, at most ``FORECAST_CAP``.

    Every message re-sends the conversation: one costs about the conversation so far plus
    what the turn adds (question and reply), and the conversation grows by that much.
    """
    growth = max(1, turn_growth or DEFAULT_TURN_GROWTH)
    size, left, count = next_prompt_tokens, tokens_left, 0
    while count < FORECAST_CAP and size + growth <= left:
        left -= size + growth
        size += growth
        count += 1
    return count


def forecast(interview: Interview) -> int | None:
    """The interview's "about N more messages fit", or None before anything is known."""
    if interview.next_prompt_tokens <= 0:
        return None
    return messages_that_fit(
        interview.tokens_left, interview.next_prompt_tokens, interview.turn_growth_tokens
    )


def crossed_thresholds(interview: Interview, now: datetime) -> list[Threshold]:
    """Every threshold whose condition holds now (sent or not)."""
    crossed = [t for t in TOKEN_THRESHOLDS if token_fraction_used(interview) >= t.fraction]
    fits = forecast(interview)
    if fits is not None:
        crossed += [t for t in FORECAST_THRESHOLDS if fits <= t.fraction]
    if interview.started_at is not None:
        left = time_fraction_left(interview, now)
        crossed += [t for t in TIME_THRESHOLDS if left <= t.fraction]
    return crossed


def due_warnings(interview: Interview, now: datetime) -> list[Threshold]:
    """Crossed thresholds not yet announced, most severe last."""
    if interview.status is not Status.ACTIVE:
        return []
    return [t for t in crossed_thresholds(interview, now) if t.key not in interview.warnings_sent]


def forecast_text(fits: int) -> str:
    """``about N more messages fit`` in words."""
    if fits <= 0:
        return "Your next message may not fit in the token budget; keep it short."
    if fits == 1:
        return "About 1 more message fits in the token budget; keep it short."
    return f"About {fits} more messages fit in the token budget."


def warning_text(due: list[Threshold], interview: Interview) -> str:
    """One notice for the warnings due together: the most severe of each kind, and for the
    forecast what it says now (a forecast that jumped from 3 straight to 1 says 1)."""
    tokens = [t for t in due if t in TOKEN_THRESHOLDS]
    times = [t for t in due if t in TIME_THRESHOLDS]
    parts = [tokens[-1].message] if tokens else []
    if any(t in FORECAST_THRESHOLDS for t in due):
        parts.append(forecast_text(forecast(interview) or 0))
        parts.append("Every message re-sends the whole conversation, so each costs more.")
    if times:
        parts.append(times[-1].message)
    return "⚠️ " + " ".join(parts)


def drop_stale_warnings(interview: Interview, now: datetime) -> None:
    """After an extension, re-arm warnings whose condition no longer holds (keys that are no
    threshold's, such as ``core.outage.LLM_DOWN``, stay)."""
    still = {t.key for t in crossed_thresholds(interview, now)}
    known = {t.key for t in (*TOKEN_THRESHOLDS, *FORECAST_THRESHOLDS, *TIME_THRESHOLDS)}
    interview.warnings_sent = [k for k in interview.warnings_sent if k in still or k not in known]


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


# The least a turn must be able to hold to be worth having: a few words asked, a sentence back.
MIN_TURN_TOKENS = 32


def exhausted(tokens_left: int, next_prompt_tokens: int) -> bool:
    """True when not even a short message with a short reply fits any more.

    ``next_prompt_tokens`` is what an empty next message would need (the conversation so
    far plus the chat format's overhead).
    """
    return tokens_left < next_prompt_tokens + MIN_TURN_TOKENS


def completion_cap(tokens_left: int, prompt_tokens: int) -> int:
    """The most completion tokens a call may produce; 0 means the prompt does not fit."""
    return max(0, tokens_left - prompt_tokens)


@dataclass(frozen=True)
class Charge:
    """What a model call cost, and what of it goes on the budget."""

    spent: int  # as the API reported it (or as counted, when the stream broke)
    charged: int  # at most what was reserved for the call
    prompt_tokens: int
    completion_tokens: int

    @property
    def overrun(self) -> int:
        """Reported beyond the reservation: only an endpoint that counts differently."""
        return self.spent - self.charged


def charge(result: ChatResult, prompt_tokens: int, reserved: int, received_tokens: int) -> Charge:
    """The authoritative usage when reported; a broken stream costs the prompt plus what
    arrived (``received_tokens``); a call that never reached the model costs nothing."""
    if result.usage is not None:
        prompt, completion = result.usage.prompt_tokens, result.usage.completion_tokens
    elif result.reached_model:
        prompt, completion = prompt_tokens, received_tokens
    else:
        prompt = completion = 0
    spent = prompt + completion
    return Charge(spent, min(spent, reserved), prompt, completion)
