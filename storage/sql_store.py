"""The SQL implementation of :class:`core.ports.InterviewStore` (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from core.errors import Conflict, NotFound
from core.models import (
    AuditEvent,
    Challenge,
    EndReason,
    Interview,
    Status,
    Turn,
    TurnStatus,
    Workspace,
)
from storage.engine import make_engine
from storage.tables import (
    OPEN_CANDIDATE_INDEX,
    OPEN_STATUSES,
    ROOM_CONSTRAINT,
    audit_events,
    challenges,
    interviews,
    turns,
    workspaces,
)

if TYPE_CHECKING:
    from core.ports import InterviewStore

    def _implements_the_port(store: SqlStore) -> InterviewStore:
        return store


VERSION_CONFLICT = "The interview changed while you were acting on it; please try again."
ROOM_CONFLICT = "This conversation is already linked to another interview."

# How the two backends name the violated unique index in their error messages.
_OPEN_CANDIDATE_MARKERS = (OPEN_CANDIDATE_INDEX, "interviews.workspace_id, interviews.candidate_id")
_ROOM_MARKERS = (ROOM_CONSTRAINT, "interviews.platform, interviews.room_key")

_WRITE_ATTEMPTS = 8


def create_store(
    database_url: str, *, connect_args: Mapping[str, Any] | None = None, echo: bool = False
) -> SqlStore:
    """A store on a new engine for ``database_url`` (see :func:`storage.engine.make_engine`).

    The schema must exist already: run :func:`storage.migrate.upgrade` first.
    """
    return SqlStore(make_engine(database_url, connect_args=connect_args, echo=echo))


class SqlStore:
    """Workspaces, interviews, turns, audit events and custom challenges in SQL.

    Every method runs in its own short transaction; the dataclasses it returns are fresh
    copies, so callers may change them freely and save them back.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def engine(self) -> AsyncEngine:
        """The engine the store runs on."""
        return self._engine

    async def ping(self, timeout_s: float = 5.0) -> bool:
        """True if the database answers ``SELECT 1`` within ``timeout_s`` (health check)."""
        try:
            async with asyncio.timeout(timeout_s), self._engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    # -- workspaces ---------------------------------------------------------------------

    async def get_or_create_workspace(self, platform: str, external_id: str) -> Workspace:
        """The workspace for a platform's team or guild id, created on first use."""
        query = sa.select(workspaces).where(
            workspaces.c.platform == platform, workspaces.c.external_id == external_id
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is not None:
            return _workspace(row)
        workspace = Workspace(platform=platform, external_id=external_id)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(sa.insert(workspaces).values(_workspace_values(workspace)))
        except IntegrityError:
            # Created concurrently by someone else: use theirs.
            async with self._engine.connect() as conn:
                row = (await conn.execute(query)).mappings().first()
            if row is None:
                raise
            return _workspace(row)
        return workspace

    async def get_workspace(self, workspace_id: str) -> Workspace | None:
        """The workspace with this id, if any."""
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(workspaces).where(workspaces.c.id == workspace_id)))
                .mappings()
                .first()
            )
        return None if row is None else _workspace(row)

    async def save_workspace(self, workspace: Workspace) -> None:
        """Update the workspace (its settings), inserting it if it is not stored yet."""
        values = _workspace_values(workspace)
        async with self._engine.begin() as conn:
            result = await conn.execute(
                sa.update(workspaces).where(workspaces.c.id == workspace.id).values(values)
            )
            if result.rowcount == 0:
                await conn.execute(sa.insert(workspaces).values(values))

    # -- interviews ---------------------------------------------------------------------

    async def add_interview(self, interview: Interview, *events: AuditEvent) -> None:
        """Insert the interview and its audit events in one transaction.

        Raises ``Conflict`` if the candidate already has an open interview in the workspace
        (or the room is already linked to another interview).
        """
        try:
            async with self._engine.begin() as conn:
                await conn.execute(sa.insert(interviews).values(_interview_values(interview)))
                await _insert_events(conn, events)
        except IntegrityError as exc:
            conflict = _interview_conflict(interview, exc)
            if conflict is None:
                raise
            raise conflict from exc

    async def save_interview(self, interview: Interview, *events: AuditEvent) -> None:
        """Update the interview if nobody else did meanwhile, bump its version, add events.

        Raises ``Conflict`` if the stored version moved on, or if the candidate already has
        another open interview; nothing is written then and ``interview`` is unchanged.
        """
        try:
            async with self._engine.begin() as conn:
                await _update_interview(conn, interview)
                await _insert_events(conn, events)
        except IntegrityError as exc:
            conflict = _interview_conflict(interview, exc)
            if conflict is None:
                raise
            raise conflict from exc
        interview.version += 1

    async def get_interview(self, interview_id: str) -> Interview | None:
        """The interview with this id, if any."""
        return await self._one_interview(interviews.c.id == interview_id)

    async def find_by_room(self, platform: str, room_key: str) -> Interview | None:
        """The interview whose conversation has this room key on this platform."""
        return await self._one_interview(
            interviews.c.platform == platform, interviews.c.room_key == room_key
        )

    async def find_open_for_candidate(
        self, workspace_id: str, candidate_id: str
    ) -> Interview | None:
        """The candidate's active or paused interview in the workspace, if any."""
        return await self._one_interview(
            interviews.c.workspace_id == workspace_id,
            interviews.c.candidate_id == candidate_id,
            interviews.c.status.in_(OPEN_STATUSES),
        )

    async def list_open(self, workspace_id: str | None = None) -> list[Interview]:
        """Active and paused interviews (all workspaces when ``workspace_id`` is None)."""
        query = sa.select(interviews).where(interviews.c.status.in_(OPEN_STATUSES))
        if workspace_id is not None:
            query = query.where(interviews.c.workspace_id == workspace_id)
        query = query.order_by(interviews.c.created_at, interviews.c.id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_interview(row) for row in rows]

    async def _one_interview(self, *where: sa.ColumnElement[bool]) -> Interview | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(interviews).where(*where))).mappings().first()
        return None if row is None else _interview(row)

    # -- turns --------------------------------------------------------------------------

    async def add_turn(self, turn: Turn) -> bool:
        """Insert the turn with the next ``seq`` of its interview and set ``turn.seq``.

        Returns False, storing nothing, if the platform message id is already stored for
        this interview. Raises ``NotFound`` if the interview does not exist.
        """
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                async with self._engine.begin() as conn:
                    seq = await _insert_turn(conn, turn)
            except IntegrityError:
                # A duplicate message, or (rarely) another writer took the same seq: retry.
                async with self._engine.connect() as conn:
                    if await _turn_exists(conn, turn):
                        return False
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(random.uniform(0.001, 0.01 * (attempt + 1)))
                continue
            if seq is None:
                return False
            turn.seq = seq
            return True
        raise AssertionError("unreachable")  # pragma: no cover

    async def save_turn(self, turn: Turn, interview: Interview | None = None) -> None:
        """Update the turn, and the interview with it in the same transaction when given.

        Raises ``Conflict`` (and stores neither) if the interview's version moved on;
        ``NotFound`` if the turn is not stored.
        """
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(
                    sa.update(turns).where(turns.c.id == turn.id).values(_turn_update_values(turn))
                )
                if result.rowcount == 0:
                    raise NotFound("That message is no longer part of the interview.")
                if interview is not None:
                    await _update_interview(conn, interview)
        except IntegrityError as exc:
            conflict = None if interview is None else _interview_conflict(interview, exc)
            if conflict is None:
                raise
            raise conflict from exc
        if interview is not None:
            interview.version += 1

    async def list_turns(self, interview_id: str) -> list[Turn]:
        """All turns of the interview in arrival order (by ``seq``)."""
        query = sa.select(turns).where(turns.c.interview_id == interview_id).order_by(turns.c.seq)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_turn(row) for row in rows]

    # -- audit --------------------------------------------------------------------------

    async def list_audit(self, interview_id: str) -> list[AuditEvent]:
        """The interview's audit events by time, then by the order they were stored."""
        query = (
            sa.select(audit_events)
            .where(audit_events.c.interview_id == interview_id)
            .order_by(audit_events.c.at, audit_events.c.seq)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_audit_event(row) for row in rows]

    # -- custom challenges --------------------------------------------------------------

    async def get_custom_challenge(self, workspace_id: str | None, slug: str) -> Challenge | None:
        """The workspace's own challenge with this slug, else the global one, else None."""
        query = sa.select(challenges).where(
            challenges.c.slug == slug, _challenge_scope(workspace_id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        best = _prefer_workspace(rows)
        return None if not best else _challenge(best[0])

    async def list_custom_challenges(self, workspace_id: str | None) -> list[Challenge]:
        """The workspace's challenges and the global ones, by slug.

        A workspace challenge hides a global one with the same slug, as in
        :meth:`get_custom_challenge`.
        """
        query = sa.select(challenges).where(_challenge_scope(workspace_id))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_challenge(row) for row in _prefer_workspace(rows)]

    async def save_custom_challenge(self, workspace_id: str | None, challenge: Challenge) -> None:
        """Insert the challenge, replacing any with the same (workspace, slug)."""
        owner = (
            challenges.c.workspace_id.is_(None)
            if workspace_id is None
            else challenges.c.workspace_id == workspace_id
        )
        values = _challenge_values(workspace_id, challenge)
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(
                        sa.delete(challenges).where(owner, challenges.c.slug == challenge.slug)
                    )
                    await conn.execute(sa.insert(challenges).values(values))
            except IntegrityError:
                # Saved concurrently under the same slug: replace theirs.
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(random.uniform(0.001, 0.01 * (attempt + 1)))
                continue
            return


# -- statements ---------------------------------------------------------------------------


async def _update_interview(conn: AsyncConnection, interview: Interview) -> None:
    values = _interview_values(interview)
    del values["id"]
    values["version"] = interview.version + 1
    result = await conn.execute(
        sa.update(interviews)
        .where(interviews.c.id == interview.id, interviews.c.version == interview.version)
        .values(values)
    )
    if result.rowcount == 0:
        raise Conflict(VERSION_CONFLICT)


async def _insert_events(conn: AsyncConnection, events: Iterable[AuditEvent]) -> None:
    # One statement per event keeps the insertion order (and so ``seq``) the given order.
    for event in events:
        await conn.execute(sa.insert(audit_events).values(_audit_values(event)))


async def _turn_exists(conn: AsyncConnection, turn: Turn) -> bool:
    found = await conn.scalar(
        sa.select(turns.c.id).where(
            turns.c.interview_id == turn.interview_id,
            turns.c.platform_message_id == turn.platform_message_id,
        )
    )
    return found is not None


async def _insert_turn(conn: AsyncConnection, turn: Turn) -> int | None:
    """Insert with seq = 1 + the interview's highest; None if the message is a duplicate."""
    # Lock the interview row so that concurrent inserts for one interview queue up on
    # PostgreSQL (SQLite ignores FOR UPDATE; its single writer gives the same effect).
    locked = await conn.scalar(
        sa.select(interviews.c.id).where(interviews.c.id == turn.interview_id).with_for_update()
    )
    if locked is None:
        raise NotFound("The interview for this message no longer exists.")
    if await _turn_exists(conn, turn):
        return None
    values = _turn_values(turn)
    del values["seq"]
    next_seq = sa.func.coalesce(sa.func.max(turns.c.seq), 0) + 1
    # One INSERT ... SELECT, so computing and using the next seq cannot be interleaved.
    source = sa.select(
        *(sa.literal(value, type_=turns.c[name].type) for name, value in values.items()),
        next_seq,
    ).where(turns.c.interview_id == turn.interview_id)
    await conn.execute(sa.insert(turns).from_select([*values, "seq"], source))
    seq = await conn.scalar(sa.select(turns.c.seq).where(turns.c.id == turn.id))
    return None if seq is None else int(seq)


def _interview_conflict(interview: Interview, exc: IntegrityError) -> Conflict | None:
    """The friendly ``Conflict`` for a unique index the interview ran into, if it is one."""
    message = str(exc.orig)
    if any(marker in message for marker in _OPEN_CANDIDATE_MARKERS):
        return Conflict(f"<@{interview.candidate_id}> already has an active interview.")
    if any(marker in message for marker in _ROOM_MARKERS):
        return Conflict(ROOM_CONFLICT)
    return None


def _challenge_scope(workspace_id: str | None) -> sa.ColumnElement[bool]:
    if workspace_id is None:
        return challenges.c.workspace_id.is_(None)
    return sa.or_(challenges.c.workspace_id == workspace_id, challenges.c.workspace_id.is_(None))


def _prefer_workspace(rows: Sequence[RowMapping]) -> list[RowMapping]:
    """One row per slug, a workspace row winning over a global one; sorted by slug."""
    chosen: dict[str, RowMapping] = {}
    for row in rows:
        slug = row["slug"]
        if slug not in chosen or chosen[slug]["workspace_id"] is None:
            chosen[slug] = row
    return [chosen[slug] for slug in sorted(chosen)]


# -- mapping between rows and dataclasses ---------------------------------------------------


def _workspace_values(workspace: Workspace) -> dict[str, Any]:
    return {
        "id": workspace.id,
        "platform": workspace.platform,
        "external_id": workspace.external_id,
        "settings": workspace.settings,
    }


def _workspace(row: RowMapping) -> Workspace:
    return Workspace(
        id=row["id"],
        platform=row["platform"],
        external_id=row["external_id"],
        settings=dict(row["settings"] or {}),
    )


def _interview_values(interview: Interview) -> dict[str, Any]:
    return {
        "id": interview.id,
        "workspace_id": interview.workspace_id,
        "platform": interview.platform,
        "candidate_id": interview.candidate_id,
        "interviewer_id": interview.interviewer_id,
        "challenge_slug": interview.challenge_slug,
        "time_limit_s": interview.time_limit_s,
        "token_budget": interview.token_budget,
        "created_at": interview.created_at,
        "status": Status(interview.status).value,
        "scheduled_for": interview.scheduled_for,
        "started_at": interview.started_at,
        "ended_at": interview.ended_at,
        "end_reason": None
        if interview.end_reason is None
        else EndReason(interview.end_reason).value,
        "extra_time_s": interview.extra_time_s,
        "extra_tokens": interview.extra_tokens,
        "paused_total_s": interview.paused_total_s,
        "paused_since": interview.paused_since,
        "tokens_used": interview.tokens_used,
        "warnings_sent": list(interview.warnings_sent),
        "room_key": interview.room_key,
        "platform_data": interview.platform_data,
        "version": interview.version,
        "next_prompt_tokens": interview.next_prompt_tokens,
        "turn_growth_tokens": interview.turn_growth_tokens,
    }


def _interview(row: RowMapping) -> Interview:
    end_reason = row["end_reason"]
    return Interview(
        id=row["id"],
        workspace_id=row["workspace_id"],
        platform=row["platform"],
        candidate_id=row["candidate_id"],
        interviewer_id=row["interviewer_id"],
        challenge_slug=row["challenge_slug"],
        time_limit_s=row["time_limit_s"],
        token_budget=row["token_budget"],
        created_at=row["created_at"],
        status=Status(row["status"]),
        scheduled_for=row["scheduled_for"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        end_reason=None if end_reason is None else EndReason(end_reason),
        extra_time_s=row["extra_time_s"],
        extra_tokens=row["extra_tokens"],
        paused_total_s=float(row["paused_total_s"]),
        paused_since=row["paused_since"],
        tokens_used=row["tokens_used"],
        warnings_sent=list(row["warnings_sent"] or []),
        room_key=row["room_key"],
        platform_data=dict(row["platform_data"] or {}),
        version=row["version"],
        next_prompt_tokens=row["next_prompt_tokens"],
        turn_growth_tokens=row["turn_growth_tokens"],
    )


def _turn_values(turn: Turn) -> dict[str, Any]:
    return {
        "id": turn.id,
        "interview_id": turn.interview_id,
        "seq": turn.seq,
        "author_id": turn.author_id,
        "content": turn.content,
        "platform_message_id": turn.platform_message_id,
        "created_at": turn.created_at,
        "status": TurnStatus(turn.status).value,
        "reply": turn.reply,
        "prompt_tokens": turn.prompt_tokens,
        "completion_tokens": turn.completion_tokens,
        "charged_tokens": turn.charged_tokens,
        "usage_reported": turn.usage_reported,
        "error": turn.error,
        "answered_at": turn.answered_at,
    }


def _turn_update_values(turn: Turn) -> dict[str, Any]:
    # The identity of a turn (interview, platform message, position) never changes.
    values = _turn_values(turn)
    for key in ("id", "interview_id", "platform_message_id", "seq"):
        del values[key]
    return values


def _turn(row: RowMapping) -> Turn:
    return Turn(
        id=row["id"],
        interview_id=row["interview_id"],
        seq=row["seq"],
        author_id=row["author_id"],
        content=row["content"],
        platform_message_id=row["platform_message_id"],
        created_at=row["created_at"],
        status=TurnStatus(row["status"]),
        reply=row["reply"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        charged_tokens=row["charged_tokens"],
        usage_reported=bool(row["usage_reported"]),
        error=row["error"],
        answered_at=row["answered_at"],
    )


def _audit_values(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "interview_id": event.interview_id,
        "actor_id": event.actor_id,
        "kind": event.kind,
        "at": event.at,
        "detail": event.detail,
    }


def _audit_event(row: RowMapping) -> AuditEvent:
    return AuditEvent(
        id=row["id"],
        interview_id=row["interview_id"],
        actor_id=row["actor_id"],
        kind=row["kind"],
        at=row["at"],
        detail=dict(row["detail"] or {}),
    )


def _challenge_values(workspace_id: str | None, challenge: Challenge) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "slug": challenge.slug,
        "title": challenge.title,
        "difficulty": challenge.difficulty,
        "description": challenge.description,
        "time_limit_s": challenge.time_limit_s,
        "token_budget": challenge.token_budget,
        "rubric": list(challenge.rubric),
        "system_prompt": challenge.system_prompt,
        "model": challenge.model,
        "temperature": challenge.temperature,
    }


def _challenge(row: RowMapping) -> Challenge:
    temperature = row["temperature"]
    return Challenge(
        slug=row["slug"],
        title=row["title"],
        difficulty=row["difficulty"],
        description=row["description"],
        time_limit_s=row["time_limit_s"],
        token_budget=row["token_budget"],
        rubric=tuple(row["rubric"] or ()),
        system_prompt=row["system_prompt"],
        model=row["model"],
        temperature=None if temperature is None else float(temperature),
        builtin=False,
    )
