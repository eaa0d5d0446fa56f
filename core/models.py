"""The interview domain: sessions, turns, audit events, challenges, workspaces."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from core.errors import IllegalTransition


class Status(StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class EndReason(StrEnum):
    TIME_UP = "time_up"
    TOKENS_EXHAUSTED = "tokens_exhausted"
    ENDED_BY_INTERVIEWER = "ended_by_interviewer"
    CANCELLED = "cancelled"


class TurnStatus(StrEnum):
    PENDING = "pending"  # stored, not yet handled
    STREAMING = "streaming"  # the model call is under way
    ANSWERED = "answered"
    FAILED = "failed"  # the model call failed; only what was really spent was charged
    REFUSED = "refused"  # the prompt did not fit the remaining budget; nothing charged
    UNANSWERED = "unanswered"  # sent while paused or after the end; kept in the transcript


OPEN_TURN_STATUSES = (TurnStatus.PENDING, TurnStatus.STREAMING)  # still to be answered or settled


_ALLOWED: dict[Status, set[Status]] = {
    Status.SCHEDULED: {Status.ACTIVE, Status.ENDED},
    Status.ACTIVE: {Status.PAUSED, Status.ENDED},
    Status.PAUSED: {Status.ACTIVE, Status.ENDED},
    Status.ENDED: set(),
}


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Workspace:
    """A Slack workspace, a Discord guild or the console, with its team settings."""

    platform: str
    external_id: str
    settings: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)


@dataclass
class Interview:
    """One candidate's session with its time and token budgets."""

    workspace_id: str
    platform: str
    candidate_id: str
    interviewer_id: str
    challenge_slug: str
    time_limit_s: int
    token_budget: int
    created_at: datetime
    status: Status = Status.SCHEDULED
    id: str = field(default_factory=new_id)
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: EndReason | None = None
    extra_time_s: int = 0
    extra_tokens: int = 0
    paused_total_s: float = 0.0
    paused_since: datetime | None = None
    tokens_used: int = 0
    tokens_reserved: int = 0  # held for replies being generated right now (any process)
    warnings_sent: list[str] = field(default_factory=list)
    room_key: str | None = None  # how the adapter finds the interview from an incoming message
    platform_data: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    # The token forecast's inputs: the prompt an empty next message would need, and the
    # average growth of the conversation per answered turn (0: no turn answered yet).
    next_prompt_tokens: int = 0
    turn_growth_tokens: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in (Status.ACTIVE, Status.PAUSED)

    @property
    def total_budget(self) -> int:
        return self.token_budget + self.extra_tokens

    @property
    def tokens_left(self) -> int:
        """What a new call may still spend: the budget less what is charged and reserved."""
        return max(0, self.total_budget - self.tokens_used - self.tokens_reserved)

    @property
    def allowed_time_s(self) -> int:
        return self.time_limit_s + self.extra_time_s

    def deadline(self, now: datetime) -> datetime | None:
        """Start + limit + extensions + paused time (a paused session's deadline moves with now)."""
        if self.started_at is None:
            return None
        paused = self.paused_total_s
        if self.paused_since is not None:
            paused += (now - self.paused_since).total_seconds()
        return self.started_at + timedelta(seconds=self.allowed_time_s + paused)

    def seconds_left(self, now: datetime) -> int:
        """Whole seconds until the deadline (the full limit before start; once ended, what
        was left when it ended)."""
        if self.status is Status.ENDED:
            if self.ended_at is None or self.started_at is None:
                return 0
            now = self.ended_at
        deadline = self.deadline(now)
        if deadline is None:
            return self.allowed_time_s
        return max(0, int((deadline - now).total_seconds()))

    def transition(self, to: Status) -> None:
        if to not in _ALLOWED[self.status]:
            raise IllegalTransition(_transition_message(self.status, to))
        self.status = to


def _transition_message(current: Status, to: Status) -> str:
    if current is Status.ENDED:
        return "This interview has already ended."
    if to is Status.ACTIVE and current is Status.ACTIVE:
        return "This interview is already running; there is nothing to resume."
    if to is Status.PAUSED and current is Status.PAUSED:
        return "This interview is already paused."
    if to is Status.PAUSED:
        return "Only a running interview can be paused."
    return f"An interview that is {current.value} cannot become {to.value}."


@dataclass
class Turn:
    """One candidate message and the model's reply, with the tokens it cost."""

    interview_id: str
    author_id: str
    content: str
    platform_message_id: str
    created_at: datetime
    status: TurnStatus = TurnStatus.PENDING
    id: str = field(default_factory=new_id)
    seq: int = 0
    reply: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    charged_tokens: int = 0
    usage_reported: bool = False
    error: str | None = None
    answered_at: datetime | None = None
    reserved_tokens: int = 0  # held in the interview's budget while the reply streams


@dataclass
class AuditEvent:
    """Who did what to an interview, and when."""

    interview_id: str
    actor_id: str
    kind: str
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)


@dataclass
class Job:
    """Durable work due at a moment, run exactly once across processes and restarts.

    ``key`` is unique: scheduling a key again moves the same job (its ``revision`` grows),
    so a handler that re-arms its own job never loses the new moment.
    """

    kind: str
    key: str
    due_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    done_at: datetime | None = None
    attempts: int = 0
    revision: int = 0
    last_error: str | None = None


class ProgramStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"


class OccurrenceStatus(StrEnum):
    SCHEDULED = "scheduled"
    STARTED = "started"  # the interview opened (``interview_id``)
    MISSED = "missed"  # the candidate was busy, or the bot was down too long (``note``)
    SKIPPED = "skipped"  # an interviewer skipped it


@dataclass
class Program:
    """A weekly interview: ``count`` occurrences on ``weekday`` at ``local_time`` in
    ``timezone`` (the team's zone when it was scheduled), from ``first_date``."""

    workspace_id: str
    platform: str
    candidate_id: str
    interviewer_id: str
    weekday: int  # Monday is 0
    local_time: str  # "15:00"
    timezone: str
    first_date: date
    count: int
    challenge_slug: str
    created_at: datetime
    time_limit_s: int | None = None  # None: the challenge's suggestion, else the default
    token_budget: int | None = None
    reminders_s: list[int] = field(default_factory=list)
    platform_data: dict[str, Any] = field(default_factory=dict)
    status: ProgramStatus = ProgramStatus.ACTIVE
    id: str = field(default_factory=new_id)
    short_id: str = field(default_factory=lambda: new_id()[:6])


@dataclass
class Occurrence:
    """One of a program's interviews, at a moment in UTC."""

    program_id: str
    index: int  # 0-based
    at: datetime
    status: OccurrenceStatus = OccurrenceStatus.SCHEDULED
    interview_id: str | None = None
    note: str | None = None
    id: str = field(default_factory=new_id)


@dataclass(frozen=True)
class Challenge:
    """A problem the candidate solves, with its suggested limits and evaluation hints."""

    slug: str
    title: str
    difficulty: str
    description: str
    time_limit_s: int | None = None  # suggested limits; None: the bot's defaults apply
    token_budget: int | None = None
    rubric: tuple[str, ...] = ()
    system_prompt: str | None = None
    model: str | None = None
    temperature: float | None = None
    builtin: bool = True


@dataclass(frozen=True)
class Actor:
    """The person behind a command, as the platform knows them."""

    user_id: str
    is_interviewer: bool


@dataclass
class Report:
    """An ended interview's evaluation report, stored once, then delivered once.

    ``evaluation`` is the judge's answer (``core.evaluation.Evaluation`` as a dict) or None
    with ``evaluation_error`` saying why; ``delivery`` records what has been posted
    (``ref`` of the summary message, ``files`` once attached) so a retry never re-posts.
    """

    interview_id: str
    workspace_id: str
    platform: str
    candidate_id: str
    interviewer_id: str
    challenge_slug: str
    created_at: datetime
    metrics: dict[str, Any]
    transcript_md: str
    chart_png: bytes
    evaluation: dict[str, Any] | None = None
    evaluation_error: str | None = None
    evaluation_label: str | None = None  # e.g. the offline judge's "not AI" label
    evaluation_tokens: int = 0
    links: dict[str, str] = field(default_factory=dict)  # turn number -> message link
    delivery: dict[str, Any] = field(default_factory=dict)
    delivered_at: datetime | None = None
    id: str = field(default_factory=new_id)
