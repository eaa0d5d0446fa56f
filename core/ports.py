"""The ports the engine talks through: storage, the language model, chat platforms, time.

Adapters (Slack, Discord, console) implement :class:`Platform`; ``adapters/llm`` implements
:class:`ChatModel`; ``storage`` implements :class:`UnitOfWork` (one transaction per use case,
a repository per aggregate) and :class:`RateLimiter`; ``scheduler`` implements
:class:`Alarm`; ``bot`` implements :class:`Metrics`. Unit tests use in-memory fakes of each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from core.models import (
    AuditEvent,
    Challenge,
    Interview,
    Job,
    Occurrence,
    OccurrenceStatus,
    Program,
    Report,
    Turn,
    TurnStatus,
    Workspace,
)

if TYPE_CHECKING:
    from core.counter import CounterView
    from core.evaluation import JudgeRequest, JudgeResult
    from core.report_metrics import Timeline
    from core.report_view import ReportView

ChatMessage = dict[str, str]
OnDelta = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ChatRequest:
    """One streamed chat completion."""

    model: str
    messages: Sequence[ChatMessage]
    max_completion_tokens: int
    temperature: float | None = None


@dataclass(frozen=True)
class Usage:
    """Token usage as the API reported it (authoritative)."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResult:
    """What a call produced. ``usage`` is None when the stream broke before reporting it."""

    text: str
    usage: Usage | None
    error: str | None = None  # a message fit for the candidate when the call failed
    reached_model: bool = False  # the model started answering (tokens were spent)
    finish_reason: str | None = None
    outage: bool = False  # the model's endpoint is down (circuit open): tell people once


class ChatModel(Protocol):
    """A streaming chat model (the OpenAI gateway, or the offline model)."""

    label: str | None  # shown on every reply when set (e.g. the offline model)

    async def stream_chat(self, request: ChatRequest, on_delta: OnDelta) -> ChatResult:
        """Stream the reply into ``on_delta``; never raises for API failures."""
        ...


class ReplyWriter(Protocol):
    """A reply message in the interview conversation that fills in while the model streams."""

    async def append(self, delta: str) -> None: ...

    async def finish(self, footer: str) -> None:
        """The reply is complete; ``footer`` is the small per-turn token line."""
        ...

    async def fail(self, message: str) -> None:
        """The call failed; show ``message`` (after any partial text)."""
        ...


class Platform(Protocol):
    """What the engine needs from a chat platform."""

    name: str

    def mention(self, user_id: str) -> str:
        """How this platform writes a person in a message (``<@U1>``, or a plain name)."""
        ...

    def counter_refresh_s(self, view: CounterView) -> float | None:
        """How often a running counter must be redrawn (None: only when it changes)."""
        ...

    async def open_room(
        self, interview: Interview, challenge: Challenge, view: CounterView
    ) -> None:
        """Open the private conversation, post the challenge and the counter.

        Sets ``interview.room_key`` (how incoming messages are matched to the interview) and
        any ``interview.platform_data`` the adapter needs later.
        """
        ...

    async def post_notice(self, interview: Interview, text: str) -> None:
        """A short bot message in the interview conversation (warnings, refusals)."""
        ...

    def reply_writer(self, interview: Interview, turn: Turn) -> ReplyWriter: ...

    async def show_counter(self, interview: Interview, view: CounterView) -> None:
        """Bring the live counter up to date (adapters may coalesce and rate-limit)."""
        ...

    async def close_room(self, interview: Interview, view: CounterView, note: str) -> None:
        """Final counter and closing note; lock the conversation where the platform can."""
        ...

    async def post_to_channel(self, workspace: Workspace, channel_id: str, text: str) -> None: ...

    async def send_dm(self, workspace: Workspace, user_id: str, text: str) -> None: ...

    async def display_name(self, workspace: Workspace, user_id: str) -> str:
        """A person's name as people read it (files and tables, where mentions don't work)."""
        ...

    async def message_link(self, interview: Interview, message_id: str) -> str | None:
        """A link to a message of the interview conversation (None where there is none)."""
        ...

    async def post_report(
        self,
        workspace: Workspace,
        target: ReportTarget,
        view: ReportView,
        files: Sequence[ReportFile],
    ) -> PostedReport:
        """One top-level report message to ``target`` (the files with it where the
        platform can attach them to the message itself)."""
        ...

    async def attach_report_files(
        self, workspace: Workspace, target: ReportTarget, ref: str, files: Sequence[ReportFile]
    ) -> None:
        """Add the files to a posted report (its thread), when ``post_report`` could not."""
        ...

    async def send_file(
        self, workspace: Workspace, user_id: str, text: str, file: ReportFile
    ) -> None:
        """A file for one person's eyes only (``/interview export``)."""
        ...

    def when(self, moment: datetime, zone: str) -> str:
        """A moment as each reader sees it in their own time zone where the platform can
        (Slack ``<!date^…>``, Discord ``<t:…:F>``), else in ``zone``."""
        ...


@dataclass(frozen=True)
class ReportTarget:
    """Where a report goes: the interviewers' channel, else the interviewer's DMs (with
    ``hint`` on how to configure a channel)."""

    channel_id: str | None
    user_id: str
    hint: str | None = None


@dataclass(frozen=True)
class ReportFile:
    filename: str
    content: bytes
    title: str


@dataclass(frozen=True)
class PostedReport:
    ref: str  # the platform's reference to the message (for its thread, or a link)
    files_attached: bool


class Judge(Protocol):
    """Evaluates a transcript against the rubric (the OpenAI judge, or the offline one)."""

    label: str | None  # set when the evaluation is not AI (the offline judge)

    async def evaluate(self, request: JudgeRequest) -> JudgeResult:
        """One evaluation; never raises for API or model failures (``error`` says why)."""
        ...


ChartRenderer = Callable[["Timeline"], bytes]
"""Draws a report's chart as PNG bytes (matplotlib in ``adapters/report_chart.py``)."""


# ---- storage: one unit of work per use case, a repository per aggregate -----------------


class WorkspaceRepository(Protocol):
    async def get_or_create(self, platform: str, external_id: str) -> Workspace: ...

    async def get(self, workspace_id: str) -> Workspace | None: ...

    async def update(self, workspace: Workspace) -> None: ...

    async def list_all(self) -> list[Workspace]: ...


LIFECYCLE_FIELDS = (
    "status",
    "scheduled_for",
    "started_at",
    "ended_at",
    "end_reason",
    "extra_time_s",
    "extra_tokens",
    "paused_total_s",
    "paused_since",
    "warnings_sent",
    "room_key",
    "platform_data",
)
"""What :meth:`InterviewRepository.update` writes (never the budget counters or forecast)."""


class InterviewRepository(Protocol):
    """Interviews with their turns and audit events.

    ``update`` is optimistic (``version``) and writes the lifecycle fields only; the budget
    counters (``tokens_used``, ``tokens_reserved``) and the forecast change only through
    the atomic ``reserve`` and ``settle``, so no stale copy can ever overwrite a charge.
    """

    async def add(self, interview: Interview, *events: AuditEvent) -> None:
        """Insert; ``Conflict`` if the candidate already has an open interview."""
        ...

    async def update(self, interview: Interview, *events: AuditEvent) -> None:
        """Save lifecycle fields if nobody else did meanwhile (bumps ``version``);
        ``Conflict`` otherwise, and nothing is written."""
        ...

    async def get(self, interview_id: str) -> Interview | None: ...

    async def find_by_room(self, platform: str, room_key: str) -> Interview | None: ...

    async def find_open_for_candidate(
        self, workspace_id: str, candidate_id: str
    ) -> Interview | None: ...

    async def list_open(self, workspace_id: str | None = None) -> list[Interview]: ...

    async def reserve(self, interview_id: str, tokens: int) -> bool:
        """Hold ``tokens`` of the budget, in the statement that checks that they are free
        (``tokens_used + tokens_reserved + tokens <= budget``) and that it is running."""
        ...

    async def settle(
        self,
        interview_id: str,
        *,
        reserved: int,
        charged: int,
        next_prompt_tokens: int | None = None,
        turn_growth_tokens: int | None = None,
    ) -> None:
        """Release a reservation and charge what was really spent (atomic increments)."""
        ...

    async def add_events(self, *events: AuditEvent) -> None: ...

    async def list_audit(self, interview_id: str) -> list[AuditEvent]: ...

    async def add_turn(self, turn: Turn) -> bool:
        """Insert with the next ``seq``; False (nothing stored) if the platform message id
        is already stored for this interview."""
        ...

    async def update_turn(self, turn: Turn, *, was: TurnStatus | None = None) -> bool:
        """Save the turn; with ``was``, only if it still has that status (False if not)."""
        ...

    async def list_turns(self, interview_id: str) -> list[Turn]:
        """All turns in arrival order."""
        ...

    async def next_open_turn(self, interview_id: str) -> Turn | None:
        """The earliest turn still pending or streaming."""
        ...

    async def with_open_turns(self) -> list[str]:
        """Ids of open interviews that have a pending or streaming turn (the sweep)."""
        ...

    async def started_between(
        self, workspace_id: str, start: datetime, end: datetime
    ) -> list[Interview]:
        """The workspace's interviews that started in ``[start, end)``."""
        ...


class ChallengeRepository(Protocol):
    async def get(self, workspace_id: str | None, slug: str) -> Challenge | None:
        """A custom challenge of the workspace, or a global one (workspace None)."""
        ...

    async def list(self, workspace_id: str | None) -> list[Challenge]: ...

    async def save(self, workspace_id: str | None, challenge: Challenge) -> None:
        """Insert or replace by (workspace, slug)."""
        ...


class ProgramRepository(Protocol):
    """Weekly programs and their occurrences."""

    async def add(self, program: Program, occurrences: list[Occurrence]) -> None:
        """Insert; ``Conflict`` if the short id is taken in the workspace."""
        ...

    async def get(self, program_id: str) -> Program | None: ...

    async def by_short_id(self, workspace_id: str, short_id: str) -> Program | None: ...

    async def list_active(self, workspace_id: str) -> list[Program]: ...

    async def update(self, program: Program) -> None: ...

    async def occurrences(self, program_id: str) -> list[Occurrence]:
        """The program's occurrences by index."""
        ...

    async def update_occurrence(
        self, occurrence: Occurrence, *, was: OccurrenceStatus | None = None
    ) -> bool:
        """Save; with ``was``, only if it still has that status (False if not)."""
        ...


class ReportRepository(Protocol):
    """Evaluation reports, one per interview."""

    async def add(self, report: Report) -> bool:
        """Insert; False (nothing stored) if the interview already has a report."""
        ...

    async def for_interview(self, interview_id: str) -> Report | None: ...

    async def latest_for_candidate(self, workspace_id: str, candidate_id: str) -> Report | None:
        """The candidate's newest report in the workspace."""
        ...

    async def update_delivery(self, report: Report) -> None:
        """Save ``delivery`` and ``delivered_at``."""
        ...


class JobRepository(Protocol):
    """Durable due work. Claims expire, so a job whose process died is taken over."""

    async def add_once(self, job: Job) -> bool:
        """Insert unless a job with this key exists (done or not): for work that must
        happen once ever, such as a reminder. True if it was inserted."""
        ...

    async def schedule(self, job: Job) -> None:
        """Insert, or move the job with this key (new moment and payload, not done,
        unclaimed, ``revision`` + 1)."""
        ...

    async def cancel(self, key: str, now: datetime) -> None:
        """Mark the job with this key done, if there is one."""
        ...

    async def claim_due(
        self, owner: str, now: datetime, until: datetime, limit: int, key: str | None = None
    ) -> list[Job]:
        """Claim up to ``limit`` due jobs nobody holds (or whose claim expired); with
        ``key``, only that job."""
        ...

    async def finish(self, job: Job, now: datetime) -> None:
        """Done, unless the job was scheduled again while it ran (then it stays armed)."""
        ...

    async def retry(self, job: Job, due_at: datetime, error: str) -> None:
        """Release the claim and try again at ``due_at`` (unless re-scheduled meanwhile)."""
        ...

    async def next_due(self) -> datetime | None:
        """The earliest moment a job can be claimed (due, and any claim on it expired)."""
        ...

    async def release_claims(self, owner: str) -> int:
        """Release every claim ``owner`` holds on a job not done (shutdown): the jobs can
        be claimed again at once. Returns how many."""
        ...

    async def get(self, key: str) -> Job | None: ...


class LeaseRepository(Protocol):
    """Exclusive, expiring ownership of a key (one turn at a time per interview)."""

    async def take(self, key: str, owner: str, now: datetime, until: datetime) -> bool:
        """Take or renew: True if free, expired or already ours."""
        ...

    async def release(self, key: str, owner: str) -> None: ...

    async def release_all(self, owner: str) -> int:
        """Release every lease ``owner`` holds (shutdown). Returns how many."""
        ...

    async def holder(self, key: str, now: datetime) -> tuple[str, datetime] | None:
        """Who holds the key and until when (None: free or expired)."""
        ...


@dataclass(frozen=True)
class PurgeCounts:
    """What a purge deleted, and how many open interviews it left alone (never touched)."""

    interviews: int = 0
    turns: int = 0
    audit_events: int = 0
    reports: int = 0
    programs: int = 0
    occurrences: int = 0
    jobs: int = 0
    open_kept: int = 0

    @property
    def deleted(self) -> int:
        """Rows deleted in all."""
        return (
            self.interviews
            + self.turns
            + self.audit_events
            + self.reports
            + self.programs
            + self.occurrences
            + self.jobs
        )


class PrivacyRepository(Protocol):
    """Deleting personal data when it is no longer needed (``RETENTION_DAYS``)."""

    async def purge_before(self, moment: datetime) -> PurgeCounts:
        """Delete every ended interview that ended before ``moment`` with its turns, audit
        events, report and jobs, and every program whose last occurrence is before it.
        Open interviews are never touched (``open_kept`` counts those older than it)."""
        ...


class UnitOfWork(Protocol):
    """One transaction: ``async with uow: ...; await uow.commit()``; no commit, no change."""

    workspaces: WorkspaceRepository
    interviews: InterviewRepository
    challenges: ChallengeRepository
    jobs: JobRepository
    leases: LeaseRepository
    programs: ProgramRepository
    reports: ReportRepository
    privacy: PrivacyRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


TRY_ACQUIRE_TOLERANCE = 1e-3
"""``RateLimiter.try_acquire`` allows this share of one interval on top of the burst: a
theoretical arrival time summed from many inexact intervals (0.2 s is not exact in binary)
must not lose a slot."""


class RateLimiter(Protocol):
    """A rate budget shared by every process (e.g. Slack's Tier 3 for one workspace)."""

    async def acquire(self, key: str, per_second: float, burst: int) -> None:
        """Wait for the next slot of ``key``: at most ``burst`` at once, then
        ``per_second`` on average, counted across all processes."""
        ...

    async def try_acquire(self, key: str, per_second: float, burst: int) -> bool:
        """Take a slot of ``key`` only if one is free now (same rule as :meth:`acquire`);
        never waits. False: the budget is used up for now, and nothing was taken."""
        ...

    async def give_back(self, key: str, per_second: float) -> None:
        """Return a slot of ``key`` taken by :meth:`try_acquire` and not used."""
        ...


class Alarm(Protocol):
    """Wakes the job runner at a moment (APScheduler in production, the clock in tests)."""

    def wake_at(self, when: datetime) -> None: ...


class Metrics(Protocol):
    """What the engine counts (Prometheus in production)."""

    def interview_started(self) -> None: ...

    def interview_ended(self, reason: str) -> None: ...

    def turn_done(self, status: str, charged: int, seconds: float) -> None: ...

    def evaluation_done(self, outcome: str, tokens: int) -> None:
        """An evaluation ran: ``ok``, ``failed`` or ``off``, and the tokens it cost (never
        charged to the candidate)."""
        ...

    def job_started(self, kind: str, lag_s: float) -> None:
        """A durable job was claimed and started ``lag_s`` seconds after it was due."""
        ...


class NoMetrics:
    """Counts nothing."""

    def interview_started(self) -> None:
        pass

    def interview_ended(self, reason: str) -> None:
        pass

    def turn_done(self, status: str, charged: int, seconds: float) -> None:
        pass

    def evaluation_done(self, outcome: str, tokens: int) -> None:
        pass

    def job_started(self, kind: str, lag_s: float) -> None:
        pass
