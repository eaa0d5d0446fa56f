"""Personal data: everything stored about one person (export), and deleting it (purge).

A person is a platform user (``slack:U123``, ``discord:4242``), in every workspace of that
platform or in one (``Person.workspace``, its external id). What belongs to them:

- interviews where they are the **candidate**: the interview, its turns, audit events,
  report (metrics, evaluation, transcript, chart) and the jobs that name it;
- interviews where they are the **interviewer**: when and what (no candidate, no turns, no
  report: those are the candidate's), and the audit events they caused;
- programs (weekly schedules) for them as candidate (with occurrences and jobs), or run by
  them as interviewer (again without the candidate); reminders addressed to them;
- workspace settings that name them (``config interviewers``).

A purge deletes what they are the candidate of (or, by date, every ended interview older
than a moment), never an interview that is still open. Interviews someone ran as the
interviewer stay: they are the candidates' records. The purge statements select by
subquery (no id lists), children first, in the caller's transaction.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from core.ports import PurgeCounts
from storage.tables import (
    OPEN_STATUSES,
    audit_events,
    interviews,
    jobs,
    leases,
    occurrences,
    programs,
    rate_limits,
    reports,
    turns,
    workspaces,
)

EXPORT_FORMAT = 1

PLATFORMS = ("slack", "discord", "console")
_PERSON = re.compile(r"^(?P<platform>[a-z]+):(?P<user>\S+)$")

# Interview fields an interviewer's export shows: what they did, not who the candidate was.
_INTERVIEWER_FIELDS = (
    "id",
    "platform",
    "interviewer_id",
    "challenge_slug",
    "status",
    "created_at",
    "started_at",
    "ended_at",
    "end_reason",
    "time_limit_s",
    "token_budget",
    "extra_time_s",
    "extra_tokens",
)
_PROGRAM_INTERVIEWER_FIELDS = (
    "id",
    "short_id",
    "platform",
    "interviewer_id",
    "weekday",
    "local_time",
    "timezone",
    "first_date",
    "count",
    "challenge_slug",
    "created_at",
    "status",
)


@dataclass(frozen=True)
class Person:
    """A platform user, in all workspaces of the platform or in one (its external id)."""

    platform: str
    user_id: str
    workspace: str | None = None

    @classmethod
    def parse(cls, text: str, workspace: str | None = None) -> Person:
        """``slack:U123`` or ``discord:4242``; ``ValueError`` with a reason otherwise."""
        match = _PERSON.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not platform:id (e.g. slack:U123 or discord:4242)")
        platform = match["platform"]
        if platform not in PLATFORMS:
            raise ValueError(f"unknown platform {platform!r} (one of {', '.join(PLATFORMS)})")
        return cls(platform, match["user"], workspace or None)

    def __str__(self) -> str:
        where = f" in workspace {self.workspace}" if self.workspace else ""
        return f"{self.platform}:{self.user_id}{where}"


class SqlPrivacy:
    """:class:`core.ports.PrivacyRepository`, plus the per-person export and purge."""

    def __init__(self, session: AsyncConnection) -> None:
        self._s = session

    # ------------------------------------------------------------------ purge

    async def purge_before(self, moment: datetime) -> PurgeCounts:
        c = interviews.c
        ended = sa.func.coalesce(c.ended_at, c.created_at)
        last_occurrence = sa.exists().where(
            occurrences.c.program_id == programs.c.id, occurrences.c.at >= moment
        )
        return await self._purge(
            doomed=sa.and_(c.status.notin_(OPEN_STATUSES), ended < moment),
            kept=sa.and_(c.status.in_(OPEN_STATUSES), c.created_at < moment),
            doomed_programs=sa.and_(programs.c.created_at < moment, ~last_occurrence),
        )

    async def purge_person(self, person: Person) -> PurgeCounts:
        """Delete what ``person`` is the candidate of (never an open interview)."""
        theirs = self._as_candidate(person)
        return await self._purge(
            doomed=sa.and_(theirs, interviews.c.status.notin_(OPEN_STATUSES)),
            kept=sa.and_(theirs, interviews.c.status.in_(OPEN_STATUSES)),
            doomed_programs=sa.and_(
                programs.c.workspace_id.in_(self._workspace_ids(person)),
                programs.c.candidate_id == person.user_id,
            ),
        )

    async def _purge(
        self,
        *,
        doomed: sa.ColumnElement[bool],
        kept: sa.ColumnElement[bool],
        doomed_programs: sa.ColumnElement[bool],
    ) -> PurgeCounts:
        ids = sa.select(interviews.c.id).where(doomed)
        program_ids = sa.select(programs.c.id).where(doomed_programs)
        open_kept = await self._s.scalar(sa.select(sa.func.count()).where(kept)) or 0
        deleted_jobs = await self._delete(
            jobs,
            sa.or_(
                jobs.c.payload["interview_id"].as_string().in_(ids),
                jobs.c.payload["program_id"].as_string().in_(program_ids),
            ),
        )
        # The turn leases of those interviews (``core.turns.lease_key``).
        lease_keys = sa.select(sa.literal("interview:") + interviews.c.id).where(doomed)
        await self._s.execute(sa.delete(leases).where(leases.c.key.in_(lease_keys)))
        # Their rate-limit rows (``core.turns``: the candidate's slots and notice throttle).
        limit_keys = sa.union_all(
            *(
                sa.select(sa.literal(prefix) + interviews.c.id).where(doomed)
                for prefix in ("candidate:", "notice:")
            )
        )
        await self._s.execute(sa.delete(rate_limits).where(rate_limits.c.key.in_(limit_keys)))
        # An occurrence of a program that stays keeps no link to a deleted interview.
        await self._s.execute(
            sa.update(occurrences)
            .where(occurrences.c.interview_id.in_(ids))
            .values(interview_id=None)
        )
        counts = PurgeCounts(
            reports=await self._delete(reports, reports.c.interview_id.in_(ids)),
            audit_events=await self._delete(audit_events, audit_events.c.interview_id.in_(ids)),
            turns=await self._delete(turns, turns.c.interview_id.in_(ids)),
            interviews=await self._delete(interviews, doomed),
            occurrences=await self._delete(occurrences, occurrences.c.program_id.in_(program_ids)),
            programs=await self._delete(programs, doomed_programs),
            jobs=deleted_jobs,
            open_kept=int(open_kept),
        )
        return counts

    async def _delete(self, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
        result = await self._s.execute(sa.delete(table).where(where))
        return int(result.rowcount)

    # ------------------------------------------------------------------ export

    async def export_person(self, person: Person, now: datetime) -> dict[str, Any]:
        """Everything stored about ``person``, as JSON-ready values (charts in base64)."""
        spaces = await self._rows(
            sa.select(workspaces).where(workspaces.c.id.in_(self._workspace_ids(person)))
        )
        names = {row["id"]: row["external_id"] for row in spaces}
        uid = person.user_id
        found: list[dict[str, Any]] = []
        candidate_ids: list[str] = []
        query = sa.select(interviews).where(
            interviews.c.workspace_id.in_(self._workspace_ids(person)),
            sa.or_(interviews.c.candidate_id == uid, interviews.c.interviewer_id == uid),
        )
        for row in await self._rows(query.order_by(interviews.c.created_at, interviews.c.id)):
            if row["candidate_id"] == uid:
                candidate_ids.append(row["id"])
                found.append(await self._candidate_interview(row, names))
            else:
                found.append(await self._interviewer_interview(row, names, uid))
        program_ids: list[str] = []  # theirs as candidate
        any_role: list[str] = []
        scheduled: list[dict[str, Any]] = []
        query = sa.select(programs).where(
            programs.c.workspace_id.in_(self._workspace_ids(person)),
            sa.or_(programs.c.candidate_id == uid, programs.c.interviewer_id == uid),
        )
        for row in await self._rows(query.order_by(programs.c.created_at, programs.c.id)):
            scheduled.append(await self._program(row, names, uid))
            any_role.append(row["id"])
            if row["candidate_id"] == uid:
                program_ids.append(row["id"])
        named = sa.or_(
            jobs.c.payload["interview_id"].as_string().in_(candidate_ids),
            jobs.c.payload["program_id"].as_string().in_(program_ids),
            sa.and_(  # reminders to them (as interviewer too), in these workspaces only
                jobs.c.payload["to"].as_string() == uid,
                jobs.c.payload["program_id"].as_string().in_(any_role),
            ),
        )
        job_rows = await self._rows(
            sa.select(jobs).where(named).order_by(jobs.c.due_at, jobs.c.key)
        )
        settings = [
            {"workspace": row["external_id"], "setting": "interviewers"}
            for row in spaces
            if uid in (row["settings"] or {}).get("interviewers", [])
        ]
        return {
            "format": EXPORT_FORMAT,
            "exported_at": _plain(now),
            "person": {
                "platform": person.platform,
                "user_id": uid,
                "workspace": person.workspace,
                "workspaces": sorted(names.values()),
            },
            "interviews": found,
            "programs": scheduled,
            "jobs": [
                _pick(row, ("kind", "key", "due_at", "done_at", "attempts", "last_error"))
                | {"payload": _plain(row["payload"])}
                for row in job_rows
            ],
            "workspace_settings": settings,
        }

    async def _candidate_interview(
        self, row: sa.RowMapping, names: dict[str, str]
    ) -> dict[str, Any]:
        iid = row["id"]
        entry: dict[str, Any] = {"role": "candidate", "workspace": names.get(row["workspace_id"])}
        entry |= _pick(row, [c.name for c in interviews.columns if c.name != "workspace_id"])
        entry["turns"] = [
            _pick(t, [c.name for c in turns.columns if c.name != "interview_id"])
            for t in await self._rows(
                sa.select(turns).where(turns.c.interview_id == iid).order_by(turns.c.seq)
            )
        ]
        entry["audit_events"] = [
            _event(e)
            for e in await self._rows(
                sa.select(audit_events)
                .where(audit_events.c.interview_id == iid)
                .order_by(audit_events.c.at, audit_events.c.seq)
            )
        ]
        found = await self._rows(sa.select(reports).where(reports.c.interview_id == iid))
        entry["report"] = _report(found[0]) if found else None
        return entry

    async def _interviewer_interview(
        self, row: sa.RowMapping, names: dict[str, str], uid: str
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {"role": "interviewer", "workspace": names.get(row["workspace_id"])}
        entry |= _pick(row, _INTERVIEWER_FIELDS)
        entry["audit_events"] = [
            _event(e)
            for e in await self._rows(
                sa.select(audit_events)
                .where(audit_events.c.interview_id == row["id"], audit_events.c.actor_id == uid)
                .order_by(audit_events.c.at, audit_events.c.seq)
            )
        ]
        return entry

    async def _program(self, row: sa.RowMapping, names: dict[str, str], uid: str) -> dict[str, Any]:
        mine = row["candidate_id"] == uid
        entry: dict[str, Any] = {
            "role": "candidate" if mine else "interviewer",
            "workspace": names.get(row["workspace_id"]),
        }
        fields = (
            [c.name for c in programs.columns if c.name != "workspace_id"]
            if mine
            else _PROGRAM_INTERVIEWER_FIELDS
        )
        entry |= _pick(row, fields)
        entry["occurrences"] = [
            _pick(o, ("index", "at", "status", "interview_id", "note") if mine else ("index", "at"))
            for o in await self._rows(
                sa.select(occurrences)
                .where(occurrences.c.program_id == row["id"])
                .order_by(occurrences.c.index)
            )
        ]
        return entry

    # ------------------------------------------------------------------ selections

    def _workspace_ids(self, person: Person) -> sa.Select[tuple[str]]:
        query = sa.select(workspaces.c.id).where(workspaces.c.platform == person.platform)
        if person.workspace is not None:
            query = query.where(workspaces.c.external_id == person.workspace)
        return query

    def _as_candidate(self, person: Person) -> sa.ColumnElement[bool]:
        return sa.and_(
            interviews.c.workspace_id.in_(self._workspace_ids(person)),
            interviews.c.candidate_id == person.user_id,
        )

    async def _rows(self, query: sa.Select[Any]) -> list[sa.RowMapping]:
        return list((await self._s.execute(query)).mappings())


def _event(row: sa.RowMapping) -> dict[str, Any]:
    return _pick(row, ("id", "actor_id", "kind", "at", "detail"))


def _report(row: sa.RowMapping) -> dict[str, Any]:
    chart: bytes = row["chart_png"] or b""
    skip = {"interview_id", "workspace_id", "chart_png"}
    entry = _pick(row, [c.name for c in reports.columns if c.name not in skip])
    entry["chart_png_bytes"] = len(chart)
    entry["chart_png_base64"] = base64.b64encode(chart).decode("ascii")
    return entry


def _pick(row: sa.RowMapping, names: Any) -> dict[str, Any]:
    return {name: _plain(row[name]) for name in names}


def _plain(value: Any) -> Any:
    """A stored value as JSON: times in ISO 8601 (UTC), enums as their text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
