"""The platform-neutral live counter that adapters render."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from core.budget import (
    FORECAST_CAP,
    forecast,
    time_fraction_left,
    token_fraction_used,
    warning_level,
)
from core.models import EndReason, Interview, Status
from core.parsing import format_duration


@dataclass(frozen=True)
class CounterView:
    """Everything a counter message shows, computed at one moment."""

    interview_id: str
    candidate_id: str
    interviewer_id: str
    challenge_title: str
    status: Status
    end_reason: EndReason | None
    seconds_left: int
    allowed_seconds: int
    deadline: datetime | None
    tokens_used: int
    token_budget: int
    tokens_left: int
    tokens_used_pct: int
    time_left_pct: int
    warning_level: str
    as_of: datetime
    messages_left: int | None = None  # "about N more messages fit" (None: not known yet)

    def at(self, now: datetime) -> CounterView:
        """The same counter at a later moment: only the time left moves, and only while the
        clock runs. Everything else (tokens, warning level) is as of ``as_of``: the engine
        redraws the counter when those change."""
        if self.status is not Status.ACTIVE or self.deadline is None or now <= self.as_of:
            return self
        left = max(0, int((self.deadline - now).total_seconds()))
        allowed = self.allowed_seconds
        percent = 0 if allowed <= 0 else round(100 * min(1.0, left / allowed))
        return replace(self, seconds_left=left, time_left_pct=percent, as_of=now)

    @property
    def time_left_text(self) -> str:
        return format_duration(self.seconds_left)

    @property
    def forecast_text(self) -> str:
        """``~3 more messages fit`` (empty when unknown or the interview is over)."""
        if self.messages_left is None or self.status is Status.ENDED:
            return ""
        if self.messages_left >= FORECAST_CAP:
            return f"{FORECAST_CAP}+ more messages fit"
        noun = "message fits" if self.messages_left == 1 else "messages fit"
        return f"~{self.messages_left} more {noun}"

    @property
    def status_text(self) -> str:
        if self.status is Status.ENDED and self.end_reason is not None:
            return f"ended ({self.end_reason.value})"
        return self.status.value


def build_counter(interview: Interview, challenge_title: str, now: datetime) -> CounterView:
    """Snapshot of an interview's budgets for display."""
    return CounterView(
        interview_id=interview.id,
        candidate_id=interview.candidate_id,
        interviewer_id=interview.interviewer_id,
        challenge_title=challenge_title,
        status=interview.status,
        end_reason=interview.end_reason,
        seconds_left=interview.seconds_left(now),
        allowed_seconds=interview.allowed_time_s,
        deadline=interview.deadline(now) if interview.status is not Status.ENDED else None,
        tokens_used=interview.tokens_used,
        token_budget=interview.total_budget,
        tokens_left=interview.tokens_left,
        tokens_used_pct=int(100 * token_fraction_used(interview)),
        time_left_pct=round(100 * time_fraction_left(interview, now)),
        warning_level=warning_level(interview, now) if interview.is_open else "ok",
        as_of=now,
        messages_left=forecast(interview),
    )


def progress_bar(percent: int, width: int = 10) -> str:
    """``progress_bar(40)`` -> ``"████░░░░░░"``."""
    filled = round(max(0, min(100, percent)) * width / 100)
    return "█" * filled + "░" * (width - filled)


def counter_text(view: CounterView) -> str:
    """A plain-text rendering (console, notification fallbacks)."""
    time = (
        f"⏱ ended with {view.time_left_text} left"
        if view.status is Status.ENDED
        else f"⏱ {view.time_left_text} left {progress_bar(view.time_left_pct)}"
    )
    return (
        f"{time} "
        f"| 🪙 {view.tokens_used:,}/{view.token_budget:,} tokens "
        f"{progress_bar(view.tokens_used_pct)} {view.tokens_used_pct}% "
        + (f"({view.forecast_text}) " if view.forecast_text else "")
        + f"| {view.status_text}"
        + (f" | ⚠ {view.warning_level}" if view.warning_level != "ok" else "")
    )
