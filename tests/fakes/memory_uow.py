"""An in-memory unit of work for fast service tests (Cosmic Python's fake repositories).

Objects are copied in and out like rows. Writes apply at once (no rollback): the service
checks before it writes, as it must with any store. ``commits`` counts commits.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self

from core.errors import Conflict, Stale
from core.models import (
    OPEN_TURN_STATUSES,
    AuditEvent,
    Challenge,
    Interview,
    Job,
    Occurrence,
    OccurrenceStatus,
    Program,
    ProgramStatus,
    Report,
    Status,
    Turn,
    TurnStatus,
    Workspace,
)
from core.ports import LIFECYCLE_FIELDS, PurgeCounts


@dataclass
class MemoryDatabase:
    """Everything the fake repositories hold, shared by every unit of work."""

    workspaces: dict[str, Workspace] = field(default_factory=dict)
    interviews: dict[str, Interview] = field(default_factory=dict)
    turns: dict[str, list[Turn]] = field(default_factory=dict)
    audit: list[AuditEvent] = field(default_factory=list)
    challenges: dict[tuple[str | None, str], Challenge] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    programs: dict[str, Program] = field(default_factory=dict)
    occurrences: dict[str, list[Occurrence]] = field(default_factory=dict)
    leases: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    reports: dict[str, Report] = field(default_factory=dict)  # by interview id
    commits: int = 0


class MemoryWorkspaces:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    async def get_or_create(self, platform: str, external_id: str) -> Workspace:
        for ws in self.db.workspaces.values():
            if ws.platform == platform and ws.external_id == external_id:
                return copy.deepcopy(ws)
        ws = Workspace(platform=platform, external_id=external_id)
        self.db.workspaces[ws.id] = copy.deepcopy(ws)
        return ws

    async def get(self, workspace_id: str) -> Workspace | None:
        return copy.deepcopy(self.db.workspaces.get(workspace_id))

    async def update(self, workspace: Workspace) -> None:
        self.db.workspaces[workspace.id] = copy.deepcopy(workspace)

    async def list_all(self) -> list[Workspace]:
        return copy.deepcopy(list(self.db.workspaces.values()))


class MemoryInterviews:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    def _check_unique(self, interview: Interview) -> None:
        for other in self.db.interviews.values():
            if other.id == interview.id:
                continue
            if (
                other.is_open
                and interview.is_open
                and (other.workspace_id, other.candidate_id)
                == (interview.workspace_id, interview.candidate_id)
            ):
                raise Conflict("The candidate already has an active interview.")
            if interview.room_key and (other.platform, other.room_key) == (
                interview.platform,
                interview.room_key,
            ):
                raise Conflict("This conversation is already linked to another interview.")

    async def add(self, interview: Interview, *events: AuditEvent) -> None:
        self._check_unique(interview)
        self.db.interviews[interview.id] = copy.deepcopy(interview)
        await self.add_events(*events)

    async def update(self, interview: Interview, *events: AuditEvent) -> None:
        stored = self.db.interviews[interview.id]
        if stored.version != interview.version:
            raise Stale("The interview changed while you were acting on it; please try again.")
        self._check_unique(interview)
        for name in LIFECYCLE_FIELDS:
            setattr(stored, name, copy.deepcopy(getattr(interview, name)))
        stored.version += 1
        interview.version += 1
        await self.add_events(*events)

    async def get(self, interview_id: str) -> Interview | None:
        return copy.deepcopy(self.db.interviews.get(interview_id))

    async def find_by_room(self, platform: str, room_key: str) -> Interview | None:
        for interview in self.db.interviews.values():
            if (interview.platform, interview.room_key) == (platform, room_key):
                return copy.deepcopy(interview)
        return None

    async def find_open_for_candidate(
        self, workspace_id: str, candidate_id: str
    ) -> Interview | None:
        for interview in self.db.interviews.values():
            if interview.is_open and (interview.workspace_id, interview.candidate_id) == (
                workspace_id,
                candidate_id,
            ):
                return copy.deepcopy(interview)
        return None

    async def list_open(self, workspace_id: str | None = None) -> list[Interview]:
        return [
            copy.deepcopy(i)
            for i in self.db.interviews.values()
            if i.is_open and workspace_id in (None, i.workspace_id)
        ]

    async def reserve(self, interview_id: str, tokens: int) -> bool:
        i = self.db.interviews[interview_id]
        if i.status is not Status.ACTIVE:
            return False
        if i.tokens_used + i.tokens_reserved + tokens > i.total_budget:
            return False
        i.tokens_reserved += tokens
        return True

    async def settle(
        self,
        interview_id: str,
        *,
        reserved: int,
        charged: int,
        next_prompt_tokens: int | None = None,
        turn_growth_tokens: int | None = None,
    ) -> None:
        i = self.db.interviews[interview_id]
        i.tokens_reserved -= reserved
        i.tokens_used += charged
        if next_prompt_tokens is not None:
            i.next_prompt_tokens = next_prompt_tokens
        if turn_growth_tokens is not None:
            i.turn_growth_tokens = turn_growth_tokens

    async def add_events(self, *events: AuditEvent) -> None:
        self.db.audit.extend(copy.deepcopy(list(events)))

    async def list_audit(self, interview_id: str) -> list[AuditEvent]:
        return [copy.deepcopy(e) for e in self.db.audit if e.interview_id == interview_id]

    async def add_turn(self, turn: Turn) -> bool:
        turns = self.db.turns.setdefault(turn.interview_id, [])
        if any(t.platform_message_id == turn.platform_message_id for t in turns):
            return False
        turn.seq = len(turns) + 1
        turns.append(copy.deepcopy(turn))
        return True

    async def update_turn(self, turn: Turn, *, was: TurnStatus | None = None) -> bool:
        turns = self.db.turns[turn.interview_id]
        index = [t.id for t in turns].index(turn.id)
        if was is not None and turns[index].status is not was:
            return False
        turns[index] = copy.deepcopy(turn)
        return True

    async def list_turns(self, interview_id: str) -> list[Turn]:
        return copy.deepcopy(self.db.turns.get(interview_id, []))

    async def next_open_turn(self, interview_id: str) -> Turn | None:
        for turn in self.db.turns.get(interview_id, []):
            if turn.status in OPEN_TURN_STATUSES:
                return copy.deepcopy(turn)
        return None

    async def started_between(
        self, workspace_id: str, start: datetime, end: datetime
    ) -> list[Interview]:
        return [
            copy.deepcopy(i)
            for i in self.db.interviews.values()
            if i.workspace_id == workspace_id
            and i.started_at is not None
            and start <= i.started_at < end
        ]

    async def with_open_turns(self) -> list[str]:
        return [
            interview_id
            for interview_id, turns in self.db.turns.items()
            if self.db.interviews[interview_id].is_open
            and any(t.status in OPEN_TURN_STATUSES for t in turns)
        ]


class MemoryChallenges:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    async def get(self, workspace_id: str | None, slug: str) -> Challenge | None:
        return self.db.challenges.get((workspace_id, slug)) or self.db.challenges.get((None, slug))

    async def list(self, workspace_id: str | None) -> list[Challenge]:
        chosen: dict[str, Challenge] = {}
        for (ws, slug), challenge in self.db.challenges.items():
            if (ws is None and slug not in chosen) or (ws == workspace_id and ws is not None):
                chosen[slug] = challenge
        return [chosen[slug] for slug in sorted(chosen)]

    async def save(self, workspace_id: str | None, challenge: Challenge) -> None:
        self.db.challenges[(workspace_id, challenge.slug)] = challenge


class MemoryPrograms:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    async def add(self, program: Program, occurrences: list[Occurrence]) -> None:
        for other in self.db.programs.values():
            if (other.workspace_id, other.short_id) == (program.workspace_id, program.short_id):
                raise Conflict("That program id is taken; please try again.")
        self.db.programs[program.id] = copy.deepcopy(program)
        self.db.occurrences[program.id] = copy.deepcopy(occurrences)

    async def get(self, program_id: str) -> Program | None:
        return copy.deepcopy(self.db.programs.get(program_id))

    async def by_short_id(self, workspace_id: str, short_id: str) -> Program | None:
        for program in self.db.programs.values():
            if (program.workspace_id, program.short_id) == (workspace_id, short_id.lower()):
                return copy.deepcopy(program)
        return None

    async def list_active(self, workspace_id: str) -> list[Program]:
        return [
            copy.deepcopy(p)
            for p in self.db.programs.values()
            if p.workspace_id == workspace_id and p.status is ProgramStatus.ACTIVE
        ]

    async def update(self, program: Program) -> None:
        self.db.programs[program.id].status = program.status

    async def occurrences(self, program_id: str) -> list[Occurrence]:
        return copy.deepcopy(self.db.occurrences.get(program_id, []))

    async def update_occurrence(
        self, occurrence: Occurrence, *, was: OccurrenceStatus | None = None
    ) -> bool:
        stored = self.db.occurrences[occurrence.program_id][occurrence.index]
        if was is not None and stored.status is not was:
            return False
        stored.status, stored.interview_id = occurrence.status, occurrence.interview_id
        stored.note = occurrence.note
        return True


class MemoryJobs:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    async def add_once(self, job: Job) -> bool:
        if job.key in self.db.jobs:
            return False
        self.db.jobs[job.key] = copy.deepcopy(job)
        return True

    async def schedule(self, job: Job) -> None:
        stored = self.db.jobs.get(job.key)
        if stored is None:
            self.db.jobs[job.key] = copy.deepcopy(job)
            return
        stored.kind, stored.payload, stored.due_at = (
            job.kind,
            copy.deepcopy(job.payload),
            job.due_at,
        )
        stored.done_at = stored.claimed_by = stored.claimed_until = stored.last_error = None
        stored.revision += 1

    async def cancel(self, key: str, now: datetime) -> None:
        stored = self.db.jobs.get(key)
        if stored is not None and stored.done_at is None:
            stored.done_at = now

    async def claim_due(
        self, owner: str, now: datetime, until: datetime, limit: int, key: str | None = None
    ) -> list[Job]:
        due = sorted(
            (
                j
                for j in self.db.jobs.values()
                if j.done_at is None
                and j.due_at <= now
                and (j.claimed_until is None or j.claimed_until < now)
                and key in (None, j.key)
            ),
            key=lambda j: j.due_at,
        )[:limit]
        for job in due:
            job.claimed_by, job.claimed_until, job.attempts = owner, until, job.attempts + 1
        return copy.deepcopy(due)

    async def finish(self, job: Job, now: datetime) -> None:
        stored = self.db.jobs.get(job.key)
        if stored is not None and stored.id == job.id and stored.revision == job.revision:
            stored.done_at, stored.claimed_by, stored.claimed_until = now, None, None

    async def retry(self, job: Job, due_at: datetime, error: str) -> None:
        stored = self.db.jobs.get(job.key)
        if stored is not None and stored.id == job.id and stored.revision == job.revision:
            stored.due_at, stored.claimed_by, stored.claimed_until = due_at, None, None
            stored.last_error = error

    async def next_due(self) -> datetime | None:
        due = [
            max(j.due_at, j.claimed_until) if j.claimed_until else j.due_at
            for j in self.db.jobs.values()
            if j.done_at is None
        ]
        return min(due, default=None)

    async def release_claims(self, owner: str) -> int:
        held = [j for j in self.db.jobs.values() if j.claimed_by == owner and j.done_at is None]
        for job in held:
            job.claimed_by = job.claimed_until = None
        return len(held)

    async def get(self, key: str) -> Job | None:
        return copy.deepcopy(self.db.jobs.get(key))


class MemoryLeases:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    async def take(self, key: str, owner: str, now: datetime, until: datetime) -> bool:
        held = self.db.leases.get(key)
        if held is not None and held[0] != owner and held[1] >= now:
            return False
        self.db.leases[key] = (owner, until)
        return True

    async def release(self, key: str, owner: str) -> None:
        if self.db.leases.get(key, ("", None))[0] == owner:
            del self.db.leases[key]

    async def release_all(self, owner: str) -> int:
        mine = [key for key, (holder, _) in self.db.leases.items() if holder == owner]
        for key in mine:
            del self.db.leases[key]
        return len(mine)

    async def holder(self, key: str, now: datetime) -> tuple[str, datetime] | None:
        held = self.db.leases.get(key)
        return held if held is not None and held[1] >= now else None


class MemoryReports:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    async def add(self, report: Report) -> bool:
        if report.interview_id in self.db.reports:
            return False
        self.db.reports[report.interview_id] = copy.deepcopy(report)
        return True

    async def for_interview(self, interview_id: str) -> Report | None:
        return copy.deepcopy(self.db.reports.get(interview_id))

    async def latest_for_candidate(self, workspace_id: str, candidate_id: str) -> Report | None:
        mine = [
            r
            for r in self.db.reports.values()
            if r.workspace_id == workspace_id and r.candidate_id == candidate_id
        ]
        return copy.deepcopy(max(mine, key=lambda r: r.created_at, default=None))

    async def update_delivery(self, report: Report) -> None:
        stored = self.db.reports[report.interview_id]
        stored.delivery = copy.deepcopy(report.delivery)
        stored.delivered_at = report.delivered_at


class MemoryPrivacy:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db

    async def purge_before(self, moment: datetime) -> PurgeCounts:
        db = self.db
        doomed = {
            i.id
            for i in db.interviews.values()
            if not i.is_open and (i.ended_at or i.created_at) < moment
        }
        kept = sum(i.is_open and i.created_at < moment for i in db.interviews.values())
        programs = {
            p.id
            for p in db.programs.values()
            if p.created_at < moment and all(o.at < moment for o in db.occurrences.get(p.id, []))
        }
        named = [
            key
            for key, job in db.jobs.items()
            if job.payload.get("interview_id") in doomed
            or job.payload.get("program_id") in programs
        ]
        for key in named:
            del db.jobs[key]
        for iid in doomed:
            db.leases.pop(f"interview:{iid}", None)
        for listed in db.occurrences.values():
            for occurrence in listed:
                if occurrence.interview_id in doomed:
                    occurrence.interview_id = None
        audit = [e for e in db.audit if e.interview_id in doomed]
        db.audit = [e for e in db.audit if e.interview_id not in doomed]
        return PurgeCounts(
            interviews=sum(db.interviews.pop(iid, None) is not None for iid in doomed),
            turns=sum(len(db.turns.pop(iid, [])) for iid in doomed),
            audit_events=len(audit),
            reports=sum(db.reports.pop(iid, None) is not None for iid in doomed),
            programs=sum(db.programs.pop(pid, None) is not None for pid in programs),
            occurrences=sum(len(db.occurrences.pop(pid, [])) for pid in programs),
            jobs=len(named),
            open_kept=kept,
        )


class MemoryUnitOfWork:
    def __init__(self, db: MemoryDatabase) -> None:
        self.db = db
        self.workspaces = MemoryWorkspaces(db)
        self.interviews = MemoryInterviews(db)
        self.challenges = MemoryChallenges(db)
        self.jobs = MemoryJobs(db)
        self.leases = MemoryLeases(db)
        self.programs = MemoryPrograms(db)
        self.reports = MemoryReports(db)
        self.privacy = MemoryPrivacy(db)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass

    async def commit(self) -> None:
        self.db.commits += 1


class MemoryUnitOfWorkFactory:
    """``factory()`` gives a unit of work over one shared :class:`MemoryDatabase`."""

    def __init__(self, db: MemoryDatabase | None = None) -> None:
        self.db = db or MemoryDatabase()

    def __call__(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self.db)
