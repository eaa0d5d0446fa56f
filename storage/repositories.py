"""Repositories of workspaces, interviews (with turns and audit events) and challenges.

Each works inside the unit of work's transaction (:mod:`storage.uow`); nothing here commits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import Conflict, NotFound, Stale
from core.models import (
    OPEN_TURN_STATUSES,
    AuditEvent,
    Challenge,
    Interview,
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
from core.ports import LIFECYCLE_FIELDS
from storage.mapping import from_row, row_values
from storage.tables import (
    OPEN_CANDIDATE_INDEX,
    OPEN_STATUSES,
    ROOM_CONSTRAINT,
    audit_events,
    challenges,
    interviews,
    programs,
    reports,
    turns,
    workspaces,
)
from storage.tables import occurrences as occurrences_table

T = TypeVar("T")

VERSION_CONFLICT = "The interview changed while you were acting on it; please try again."
ROOM_CONFLICT = "This conversation is already linked to another interview."
OPEN_CONFLICT = "The candidate already has an active interview."

# How the two backends name the violated unique index in their error messages.
_OPEN_CANDIDATE_MARKERS = (OPEN_CANDIDATE_INDEX, "interviews.workspace_id, interviews.candidate_id")
_ROOM_MARKERS = (ROOM_CONSTRAINT, "interviews.platform, interviews.room_key")


def param(column: sa.Column[Any], name: str | None = None) -> sa.BindParameter[Any]:
    """A bound parameter typed like ``column`` (so the column type's conversions apply)."""
    return sa.bindparam(name or f"p_{column.name}", type_=column.type)


def per_dialect(build: Callable[[str], T]) -> dict[str, T]:
    """A statement built once for each backend (``ON CONFLICT`` is dialect-specific)."""
    return {dialect: build(dialect) for dialect in ("postgresql", "sqlite")}


# The turn path's statements are built once, with bound parameters: SQLAlchemy then neither
# rebuilds a statement nor recomputes its cache key on every call, which cost 0.2 ms (a
# SELECT) to 0.9 ms (an upsert) of CPU per statement (bench/storage.py, docs/PERFORMANCE.md).
_TURN_FIELDS = tuple(f.name for f in dataclasses.fields(Turn) if f.name in turns.c)
_NEW_TURN_FIELDS = tuple(name for name in _TURN_FIELDS if name != "seq")
_FIXED_TURN_FIELDS = ("id", "interview_id", "platform_message_id", "seq")
_CHANGING_TURN_FIELDS = tuple(name for name in _TURN_FIELDS if name not in _FIXED_TURN_FIELDS)
_INTERVIEW_ID = param(interviews.c.id, "interview_id")
_TOKENS = sa.bindparam("tokens", type_=sa.Integer)

_INTERVIEW_BY_ID = sa.select(interviews).where(interviews.c.id == _INTERVIEW_ID)
# The whole row: the claim that locks it to add a turn reads the interview next (get).
_LOCK_INTERVIEW = _INTERVIEW_BY_ID.with_for_update()
_RESERVE = (
    sa.update(interviews)
    .where(
        interviews.c.id == _INTERVIEW_ID,
        interviews.c.status == Status.ACTIVE,
        interviews.c.tokens_used + interviews.c.tokens_reserved + _TOKENS
        <= interviews.c.token_budget + interviews.c.extra_tokens,
    )
    .values(tokens_reserved=interviews.c.tokens_reserved + _TOKENS)
)
_TURNS_OF = sa.select(turns).where(turns.c.interview_id == _INTERVIEW_ID).order_by(turns.c.seq)
_NEXT_OPEN_TURN = (
    sa.select(turns)
    .where(turns.c.interview_id == _INTERVIEW_ID, turns.c.status.in_(OPEN_TURN_STATUSES))
    .order_by(turns.c.seq)
    .limit(1)
)


def _add_turn_statement() -> sa.Insert:
    """``INSERT ... SELECT`` of a new turn with the next ``seq``, skipped if its platform
    message is stored already; it returns the seq when it inserted."""
    values = {name: param(turns.c[name]) for name in _NEW_TURN_FIELDS}
    interview_id = values["interview_id"]
    duplicate = sa.exists().where(
        turns.c.interview_id == interview_id,
        turns.c.platform_message_id == values["platform_message_id"],
    )
    next_seq = (
        sa.select(sa.func.coalesce(sa.func.max(turns.c.seq), 0) + 1)
        .where(turns.c.interview_id == interview_id)
        .scalar_subquery()
    )
    source = sa.select(*values.values(), next_seq).where(~duplicate)
    return sa.insert(turns).from_select([*_NEW_TURN_FIELDS, "seq"], source).returning(turns.c.seq)


def _update_turn_statement(*, checked: bool) -> sa.Update:
    """A turn's changing fields by id; ``checked``: only while its status is ``p_was``."""
    query = (
        sa.update(turns)
        .where(turns.c.id == param(turns.c.id))
        .values({name: param(turns.c[name], f"v_{name}") for name in _CHANGING_TURN_FIELDS})
    )
    return query.where(turns.c.status == param(turns.c.status, "p_was")) if checked else query


_ADD_TURN = _add_turn_statement()
_UPDATE_TURN = _update_turn_statement(checked=False)
_UPDATE_TURN_IF = _update_turn_statement(checked=True)


def _turn_params(turn: Turn, names: tuple[str, ...], prefix: str) -> dict[str, Any]:
    return {f"{prefix}{name}": getattr(turn, name) for name in names}


def upsert_insert(session: AsyncConnection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An ``INSERT`` of the session's dialect, which knows ``ON CONFLICT``."""
    return dialect_insert(session.dialect.name, table)


def dialect_insert(dialect: str, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An ``INSERT`` of the dialect named ``dialect``, which knows ``ON CONFLICT``."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignoring_duplicates(
    session: AsyncConnection, table: sa.Table, values: dict[str, Any]
) -> postgresql.Insert | sqlite.Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the session's dialect."""
    return upsert_insert(session, table).values(values).on_conflict_do_nothing()


def _conflict(exc: IntegrityError) -> Conflict | None:
    message = str(exc.orig)
    if any(marker in message for marker in _OPEN_CANDIDATE_MARKERS):
        return Conflict(OPEN_CONFLICT)
    if any(marker in message for marker in _ROOM_MARKERS):
        return Conflict(ROOM_CONFLICT)
    return None


class SqlWorkspaces:
    def __init__(self, session: AsyncConnection) -> None:
        self._s = session

    async def get_or_create(self, platform: str, external_id: str) -> Workspace:
        query = sa.select(workspaces).where(
            workspaces.c.platform == platform, workspaces.c.external_id == external_id
        )
        row = (await self._s.execute(query)).mappings().first()
        if row is not None:
            return from_row(Workspace, row)
        created = Workspace(platform=platform, external_id=external_id)
        # Created concurrently by another process? Then theirs is the one.
        await self._s.execute(
            insert_ignoring_duplicates(self._s, workspaces, row_values(created, workspaces))
        )
        row = (await self._s.execute(query)).mappings().one()
        return from_row(Workspace, row)

    async def get(self, workspace_id: str) -> Workspace | None:
        query = sa.select(workspaces).where(workspaces.c.id == workspace_id)
        row = (await self._s.execute(query)).mappings().first()
        return None if row is None else from_row(Workspace, row)

    async def list_all(self) -> list[Workspace]:
        rows = await self._s.execute(sa.select(workspaces).order_by(workspaces.c.id))
        return [from_row(Workspace, row) for row in rows.mappings()]

    async def update(self, workspace: Workspace) -> None:
        await self._s.execute(
            sa.update(workspaces)
            .where(workspaces.c.id == workspace.id)
            .values(settings=workspace.settings)
        )


class SqlInterviews:
    def __init__(self, session: AsyncConnection) -> None:
        self._s = session
        # Rows this transaction locked (add_turn) and has not written since: nobody else can
        # change them before the commit, so ``get`` needs no second read. Every write to an
        # interview's row goes through this class, and forgets it.
        self._locked: dict[str, Any] = {}

    # -- interviews -------------------------------------------------------------------------

    async def add(self, interview: Interview, *events: AuditEvent) -> None:
        try:
            await self._s.execute(sa.insert(interviews).values(row_values(interview, interviews)))
        except IntegrityError as exc:
            conflict = _conflict(exc)
            if conflict is None:
                raise
            raise conflict from exc
        await self.add_events(*events)

    async def update(self, interview: Interview, *events: AuditEvent) -> None:
        self._locked.pop(interview.id, None)
        values = row_values(interview, interviews, only=LIFECYCLE_FIELDS)
        try:
            result = await self._s.execute(
                sa.update(interviews)
                .where(interviews.c.id == interview.id, interviews.c.version == interview.version)
                .values(**values, version=interview.version + 1)
            )
        except IntegrityError as exc:
            conflict = _conflict(exc)
            if conflict is None:
                raise
            raise conflict from exc
        if result.rowcount == 0:
            raise Stale(VERSION_CONFLICT)
        interview.version += 1
        await self.add_events(*events)

    async def get(self, interview_id: str) -> Interview | None:
        row = self._locked.get(interview_id)
        if row is None:
            result = await self._s.execute(_INTERVIEW_BY_ID, {"interview_id": interview_id})
            row = result.mappings().first()
        return None if row is None else from_row(Interview, row)

    async def find_by_room(self, platform: str, room_key: str) -> Interview | None:
        return await self._one(interviews.c.platform == platform, interviews.c.room_key == room_key)

    async def find_open_for_candidate(
        self, workspace_id: str, candidate_id: str
    ) -> Interview | None:
        return await self._one(
            interviews.c.workspace_id == workspace_id,
            interviews.c.candidate_id == candidate_id,
            interviews.c.status.in_(OPEN_STATUSES),
        )

    async def list_open(self, workspace_id: str | None = None) -> list[Interview]:
        query = sa.select(interviews).where(interviews.c.status.in_(OPEN_STATUSES))
        if workspace_id is not None:
            query = query.where(interviews.c.workspace_id == workspace_id)
        rows = await self._s.execute(query.order_by(interviews.c.created_at, interviews.c.id))
        return [from_row(Interview, row) for row in rows.mappings()]

    async def _one(self, *where: sa.ColumnElement[bool]) -> Interview | None:
        row = (await self._s.execute(sa.select(interviews).where(*where))).mappings().first()
        return None if row is None else from_row(Interview, row)

    # -- the budget -------------------------------------------------------------------------

    async def reserve(self, interview_id: str, tokens: int) -> bool:
        self._locked.pop(interview_id, None)
        result = await self._s.execute(_RESERVE, {"interview_id": interview_id, "tokens": tokens})
        return bool(result.rowcount)

    async def settle(
        self,
        interview_id: str,
        *,
        reserved: int,
        charged: int,
        next_prompt_tokens: int | None = None,
        turn_growth_tokens: int | None = None,
    ) -> None:
        self._locked.pop(interview_id, None)
        c = interviews.c
        values: dict[str, Any] = {
            "tokens_reserved": c.tokens_reserved - reserved,
            "tokens_used": c.tokens_used + charged,
        }
        if next_prompt_tokens is not None:
            values["next_prompt_tokens"] = next_prompt_tokens
        if turn_growth_tokens is not None:
            values["turn_growth_tokens"] = turn_growth_tokens
        await self._s.execute(sa.update(interviews).where(c.id == interview_id).values(values))

    # -- audit ------------------------------------------------------------------------------

    async def add_events(self, *events: AuditEvent) -> None:
        if events:
            # One multi-row insert; ``seq`` keeps the given order.
            await self._s.execute(
                sa.insert(audit_events), [row_values(e, audit_events) for e in events]
            )

    async def list_audit(self, interview_id: str) -> list[AuditEvent]:
        query = (
            sa.select(audit_events)
            .where(audit_events.c.interview_id == interview_id)
            .order_by(audit_events.c.at, audit_events.c.seq)
        )
        return [from_row(AuditEvent, row) for row in (await self._s.execute(query)).mappings()]

    # -- turns ------------------------------------------------------------------------------

    async def add_turn(self, turn: Turn) -> bool:
        # Lock the interview row so concurrent inserts for one interview queue up on
        # PostgreSQL (SQLite has one writer anyway); then one INSERT ... SELECT with the next
        # seq, skipped if the platform message is stored already.
        result = await self._s.execute(_LOCK_INTERVIEW, {"interview_id": turn.interview_id})
        locked = result.mappings().first()
        if locked is None:
            raise NotFound("The interview for this message no longer exists.")
        self._locked[turn.interview_id] = locked
        result = await self._s.execute(_ADD_TURN, _turn_params(turn, _NEW_TURN_FIELDS, "p_"))
        seq = result.scalar()
        if seq is None:
            return False
        turn.seq = int(seq)
        return True

    async def update_turn(self, turn: Turn, *, was: TurnStatus | None = None) -> bool:
        values = _turn_params(turn, _CHANGING_TURN_FIELDS, "v_")
        values["p_id"] = turn.id
        if was is None:
            result = await self._s.execute(_UPDATE_TURN, values)
        else:
            result = await self._s.execute(_UPDATE_TURN_IF, {**values, "p_was": was})
        return bool(result.rowcount)

    async def list_turns(self, interview_id: str) -> list[Turn]:
        result = await self._s.execute(_TURNS_OF, {"interview_id": interview_id})
        return [from_row(Turn, row) for row in result.mappings()]

    async def next_open_turn(self, interview_id: str) -> Turn | None:
        result = await self._s.execute(_NEXT_OPEN_TURN, {"interview_id": interview_id})
        row = result.mappings().first()
        return None if row is None else from_row(Turn, row)

    async def started_between(
        self, workspace_id: str, start: datetime, end: datetime
    ) -> list[Interview]:
        query = sa.select(interviews).where(
            interviews.c.workspace_id == workspace_id,
            interviews.c.started_at >= start,
            interviews.c.started_at < end,
        )
        rows = await self._s.execute(query.order_by(interviews.c.started_at))
        return [from_row(Interview, row) for row in rows.mappings()]

    async def with_open_turns(self) -> list[str]:
        query = (
            sa.select(turns.c.interview_id)
            .join(interviews, interviews.c.id == turns.c.interview_id)
            .where(turns.c.status.in_(OPEN_TURN_STATUSES), interviews.c.status.in_(OPEN_STATUSES))
            .distinct()
        )
        return [str(value) for value in (await self._s.scalars(query))]


class SqlPrograms:
    def __init__(self, session: AsyncConnection) -> None:
        self._s = session

    async def add(self, program: Program, occurrences: list[Occurrence]) -> None:
        try:
            await self._s.execute(sa.insert(programs).values(row_values(program, programs)))
        except IntegrityError as exc:
            raise Conflict("That program id is taken; please try again.") from exc
        if occurrences:
            await self._s.execute(
                sa.insert(occurrences_table),
                [row_values(o, occurrences_table) for o in occurrences],
            )

    async def get(self, program_id: str) -> Program | None:
        return await self._one(programs.c.id == program_id)

    async def by_short_id(self, workspace_id: str, short_id: str) -> Program | None:
        return await self._one(
            programs.c.workspace_id == workspace_id, programs.c.short_id == short_id.lower()
        )

    async def list_active(self, workspace_id: str) -> list[Program]:
        query = sa.select(programs).where(
            programs.c.workspace_id == workspace_id, programs.c.status == ProgramStatus.ACTIVE
        )
        rows = await self._s.execute(query.order_by(programs.c.created_at))
        return [from_row(Program, row) for row in rows.mappings()]

    async def update(self, program: Program) -> None:
        await self._s.execute(
            sa.update(programs).where(programs.c.id == program.id).values(status=program.status)
        )

    async def occurrences(self, program_id: str) -> list[Occurrence]:
        query = (
            sa.select(occurrences_table)
            .where(occurrences_table.c.program_id == program_id)
            .order_by(occurrences_table.c.index)
        )
        return [from_row(Occurrence, row) for row in (await self._s.execute(query)).mappings()]

    async def update_occurrence(
        self, occurrence: Occurrence, *, was: OccurrenceStatus | None = None
    ) -> bool:
        query = (
            sa.update(occurrences_table)
            .where(occurrences_table.c.id == occurrence.id)
            .values(
                status=occurrence.status,
                interview_id=occurrence.interview_id,
                note=occurrence.note,
            )
        )
        if was is not None:
            query = query.where(occurrences_table.c.status == was)
        result = await self._s.execute(query)
        return bool(result.rowcount)

    async def _one(self, *where: sa.ColumnElement[bool]) -> Program | None:
        row = (await self._s.execute(sa.select(programs).where(*where))).mappings().first()
        return None if row is None else from_row(Program, row)


class SqlReports:
    def __init__(self, session: AsyncConnection) -> None:
        self._s = session

    async def add(self, report: Report) -> bool:
        insert = insert_ignoring_duplicates(self._s, reports, row_values(report, reports))
        result = await self._s.execute(insert.returning(reports.c.id))
        return result.scalar() is not None

    async def for_interview(self, interview_id: str) -> Report | None:
        return await self._one(sa.select(reports).where(reports.c.interview_id == interview_id))

    async def latest_for_candidate(self, workspace_id: str, candidate_id: str) -> Report | None:
        query = (
            sa.select(reports)
            .where(reports.c.workspace_id == workspace_id, reports.c.candidate_id == candidate_id)
            .order_by(reports.c.created_at.desc())
            .limit(1)
        )
        return await self._one(query)

    async def update_delivery(self, report: Report) -> None:
        await self._s.execute(
            sa.update(reports)
            .where(reports.c.id == report.id)
            .values(delivery=report.delivery, delivered_at=report.delivered_at)
        )

    async def _one(self, query: sa.Select[Any]) -> Report | None:
        row = (await self._s.execute(query)).mappings().first()
        return None if row is None else from_row(Report, row)


class SqlChallenges:
    def __init__(self, session: AsyncConnection) -> None:
        self._s = session

    async def get(self, workspace_id: str | None, slug: str) -> Challenge | None:
        # built once: every claim of a turn looks its challenge up
        if workspace_id is None:
            rows = await self._s.execute(_GLOBAL_CHALLENGE, {"slug": slug})
        else:
            rows = await self._s.execute(_CHALLENGE, {"slug": slug, "workspace_id": workspace_id})
        chosen = _prefer_workspace(rows.mappings().all())
        return _challenge(chosen[0]) if chosen else None

    async def list(self, workspace_id: str | None) -> list[Challenge]:
        query = sa.select(challenges).where(_scope(workspace_id))
        rows = (await self._s.execute(query)).mappings().all()
        return [_challenge(row) for row in _prefer_workspace(rows)]

    async def save(self, workspace_id: str | None, challenge: Challenge) -> None:
        owner = (
            challenges.c.workspace_id.is_(None)
            if workspace_id is None
            else challenges.c.workspace_id == workspace_id
        )
        await self._s.execute(
            sa.delete(challenges).where(owner, challenges.c.slug == challenge.slug)
        )
        values = row_values(challenge, challenges)
        values["rubric"] = list(challenge.rubric)
        await self._s.execute(sa.insert(challenges).values(**values, workspace_id=workspace_id))


def _scope(workspace_id: str | sa.BindParameter[Any] | None) -> sa.ColumnElement[bool]:
    if workspace_id is None:
        return challenges.c.workspace_id.is_(None)
    return sa.or_(challenges.c.workspace_id == workspace_id, challenges.c.workspace_id.is_(None))


_SLUG = param(challenges.c.slug, "slug")
_CHALLENGE = sa.select(challenges).where(
    challenges.c.slug == _SLUG,
    _scope(param(challenges.c.workspace_id, "workspace_id")),
)
_GLOBAL_CHALLENGE = sa.select(challenges).where(challenges.c.slug == _SLUG, _scope(None))


def _prefer_workspace(rows: Any) -> list[Any]:
    """One row per slug, a workspace row winning over a global one; sorted by slug."""
    chosen: dict[str, Any] = {}
    for row in rows:
        if row["slug"] not in chosen or chosen[row["slug"]]["workspace_id"] is None:
            chosen[row["slug"]] = row
    return [chosen[slug] for slug in sorted(chosen)]


def _challenge(row: Any) -> Challenge:
    challenge = from_row(Challenge, row, builtin=False)
    return Challenge(**{**challenge.__dict__, "rubric": tuple(row["rubric"] or ())})
