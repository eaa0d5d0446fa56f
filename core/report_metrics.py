"""The report's objective part, computed from the stored interview alone (no LLM): the
metrics table and the timeline the chart draws. Pure functions of stored facts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from core.models import AuditEvent, Interview, Turn, TurnStatus

SENT_TO_MODEL = (TurnStatus.ANSWERED, TurnStatus.FAILED)


@dataclass(frozen=True)
class Extension:
    at_s: float  # seconds after the start
    by: str
    seconds: int
    tokens: int


@dataclass(frozen=True)
class ReportMetrics:
    """Everything the metrics table shows; durations in seconds."""

    time_limit_s: int
    extra_time_s: int
    time_used_s: float  # running time: start to end, less pauses
    token_budget: int
    extra_tokens: int
    tokens_used: int
    input_tokens: int
    output_tokens: int
    prompts: int  # messages sent to the model
    answered: int
    failed: int
    refused: int  # did not fit the budget
    unanswered: int  # sent while paused or after the end
    average_prompt_tokens: float  # the candidate's own message, in tokens
    largest_prompt_tokens: int
    tokens_per_prompt: float  # charged tokens per message sent
    time_to_first_prompt_s: float | None
    longest_idle_s: float
    warnings: list[str]
    extensions: list[Extension]
    pauses: int
    paused_s: float
    end_reason: str | None
    refused_other: int = 0  # refused for another reason: too long, empty, a file, too fast
    started_at: str | None = None  # ISO 8601, UTC
    ended_at: str | None = None

    @property
    def allowed_time_s(self) -> int:
        return self.time_limit_s + self.extra_time_s

    @property
    def total_budget(self) -> int:
        return self.token_budget + self.extra_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportMetrics:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["extensions"] = [Extension(**e) for e in data.get("extensions", [])]
        return cls(**known)


@dataclass(frozen=True)
class TurnPoint:
    minute: float
    tokens: int  # cumulative tokens charged after this turn (refused: at that moment)
    seq: int
    status: str  # answered, failed or refused


@dataclass(frozen=True)
class Timeline:
    """What the chart draws; minutes are wall-clock minutes since the start."""

    title: str
    turns: list[TurnPoint]
    budget_steps: list[tuple[float, int]]  # (minute, total budget from then on)
    deadlines: list[tuple[float, float, str]]  # (minute it changed, deadline minute, why)
    warnings: list[tuple[float, str]]  # (minute, threshold key)
    pauses: list[tuple[float, float]]  # (from minute, to minute)
    end_minute: float
    end_reason: str | None
    tokens_used: int = 0
    notes: list[str] = field(default_factory=list)


def pauses_of(interview: Interview, audit: Sequence[AuditEvent]) -> list[tuple[datetime, datetime]]:
    """Pause intervals from the audit trail (a pause still open ends at the end)."""
    spans: list[tuple[datetime, datetime]] = []
    since: datetime | None = None
    for event in sorted(audit, key=lambda e: e.at):
        if event.kind == "paused" and since is None:
            since = event.at
        elif event.kind == "resumed" and since is not None:
            spans.append((since, event.at))
            since = None
    if since is not None:
        spans.append((since, interview.ended_at or since))
    return spans


def _running_seconds(
    start: datetime, end: datetime, pauses: Sequence[tuple[datetime, datetime]]
) -> float:
    """Seconds from ``start`` to ``end`` not spent paused."""
    total = (end - start).total_seconds()
    for a, b in pauses:
        overlap = (min(b, end) - max(a, start)).total_seconds()
        total -= max(0.0, overlap)
    return max(0.0, total)


def compute_metrics(
    interview: Interview,
    turns: Sequence[Turn],
    audit: Sequence[AuditEvent],
    count_tokens: Callable[[str], int],
) -> ReportMetrics:
    """The metrics table of an ended (or running) interview."""
    start = interview.started_at
    end = interview.ended_at or (turns[-1].created_at if turns else start)
    pauses = pauses_of(interview, audit)
    sent = [t for t in turns if t.status in SENT_TO_MODEL]
    sizes = [count_tokens(t.content) for t in sent]
    input_tokens = sum(t.prompt_tokens for t in sent)

    first_prompt = None
    idle = 0.0
    if start is not None and end is not None:
        if turns:
            first_prompt = _running_seconds(start, turns[0].created_at, pauses)
        moments = [start, end]
        for t in turns:
            moments.append(t.created_at)
            if t.answered_at is not None:
                moments.append(t.answered_at)
        moments = sorted(m for m in moments if start <= m <= end)
        idle = max(
            (_running_seconds(a, b, pauses) for a, b in pairwise(moments)),
            default=0.0,
        )

    extensions = [
        Extension(
            at_s=(e.at - start).total_seconds() if start else 0.0,
            by=e.actor_id,
            seconds=int(e.detail.get("seconds") or 0),
            tokens=int(e.detail.get("tokens") or 0),
        )
        for e in audit
        if e.kind == "extended"
    ]
    warnings = [str(e.detail.get("threshold")) for e in audit if e.kind == "warning"]
    return ReportMetrics(
        time_limit_s=interview.time_limit_s,
        extra_time_s=interview.extra_time_s,
        time_used_s=_running_seconds(start, end, pauses) if start and end else 0.0,
        token_budget=interview.token_budget,
        extra_tokens=interview.extra_tokens,
        tokens_used=interview.tokens_used,
        input_tokens=input_tokens,
        output_tokens=max(0, interview.tokens_used - input_tokens),
        prompts=len(sent),
        answered=sum(t.status is TurnStatus.ANSWERED for t in turns),
        failed=sum(t.status is TurnStatus.FAILED for t in turns),
        refused=sum(t.status is TurnStatus.REFUSED and not t.error for t in turns),
        refused_other=sum(t.status is TurnStatus.REFUSED and bool(t.error) for t in turns),
        unanswered=sum(t.status is TurnStatus.UNANSWERED for t in turns),
        average_prompt_tokens=sum(sizes) / len(sizes) if sizes else 0.0,
        largest_prompt_tokens=max(sizes, default=0),
        tokens_per_prompt=interview.tokens_used / len(sent) if sent else 0.0,
        time_to_first_prompt_s=first_prompt,
        longest_idle_s=idle,
        warnings=warnings,
        extensions=extensions,
        pauses=len(pauses),
        paused_s=sum((b - a).total_seconds() for a, b in pauses),
        end_reason=interview.end_reason.value if interview.end_reason else None,
        started_at=start.isoformat() if start else None,
        ended_at=interview.ended_at.isoformat() if interview.ended_at else None,
    )


def build_timeline(
    interview: Interview, turns: Sequence[Turn], audit: Sequence[AuditEvent], title: str
) -> Timeline:
    """The chart's data: cumulative tokens per turn, the budget and deadline as they moved,
    warnings and pauses, in minutes since the start."""
    start = interview.started_at or interview.created_at
    end = interview.ended_at or max((t.created_at for t in turns), default=start)

    def minute(at: datetime) -> float:
        return max(0.0, (at - start).total_seconds() / 60)

    changes: list[tuple[datetime, int, int, str]] = []  # (at, +seconds, +tokens, why)
    for e in audit:
        if e.kind == "extended":
            seconds, tokens = int(e.detail.get("seconds") or 0), int(e.detail.get("tokens") or 0)
            changes.append((e.at, seconds, tokens, _extension_label(seconds, tokens)))
    pauses = pauses_of(interview, audit)
    for a, b in pauses:
        changes.append((b, int((b - a).total_seconds()), 0, "pause"))
    changes.sort(key=lambda c: c[0])

    budget = interview.token_budget
    deadline_s = interview.time_limit_s
    budget_steps = [(0.0, budget)]
    deadlines = [(0.0, deadline_s / 60, "limit")]
    for at, seconds, tokens, why in changes:
        if tokens:
            budget += tokens
            budget_steps.append((minute(at), budget))
        if seconds:
            deadline_s += seconds
            deadlines.append((minute(at), deadline_s / 60, why))

    points: list[TurnPoint] = []
    used = 0
    ordered = sorted(turns, key=lambda t: (t.answered_at or t.created_at, t.seq))
    for t in ordered:
        if t.status in SENT_TO_MODEL:
            used += t.charged_tokens
            points.append(TurnPoint(minute(t.answered_at or t.created_at), used, t.seq, t.status))
        elif t.status is TurnStatus.REFUSED:
            points.append(TurnPoint(minute(t.created_at), used, t.seq, t.status))
    warnings = [
        (minute(e.at), str(e.detail.get("threshold"))) for e in audit if e.kind == "warning"
    ]
    return Timeline(
        title=title,
        turns=points,
        budget_steps=budget_steps,
        deadlines=deadlines,
        warnings=warnings,
        pauses=[(minute(a), minute(b)) for a, b in pauses],
        end_minute=minute(end),
        end_reason=interview.end_reason.value if interview.end_reason else None,
        tokens_used=interview.tokens_used,
    )


def _extension_label(seconds: int, tokens: int) -> str:
    parts = []
    if seconds:
        parts.append(f"+{seconds // 60}m")
    if tokens:
        parts.append(f"+{tokens:,} tokens")
    return " ".join(parts) or "extension"
