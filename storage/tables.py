"""The database schema (SQLAlchemy Core), shared by the store and the Alembic environment.

The hand-written migrations in ``storage/migrations/versions`` must create exactly this
schema; ``tests/test_storage.py`` compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from core.models import EndReason, OccurrenceStatus, ProgramStatus, Status, TurnStatus

OPEN_STATUSES = ("active", "paused")
"""Interview statuses that count as "open" (at most one per candidate and workspace)."""

OPEN_CANDIDATE_INDEX = "uq_interviews_open_candidate"
"""The partial unique index that allows one open interview per candidate."""

ROOM_CONSTRAINT = "uq_interviews_platform_room_key"


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware in UTC.

    PostgreSQL stores ``TIMESTAMP WITH TIME ZONE``; SQLite stores naive UTC text (which
    also sorts correctly). Naive datetimes are refused rather than guessed at.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored; use UTC-aware times")
        value = value.astimezone(UTC)
        if dialect.name == "postgresql":
            return value
        return value.replace(tzinfo=None)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - every driver parses it
            value = datetime.fromisoformat(str(value))
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class EnumText(sa.TypeDecorator[StrEnum]):
    """A ``StrEnum`` stored as its text (a plain VARCHAR column, no database enum type)."""

    impl = sa.String(32)
    cache_ok = True

    def __init__(self, enum: type[StrEnum]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: Any | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: Any | None, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
"""JSON everywhere, JSONB on PostgreSQL."""

# An auto-incrementing 64-bit key that SQLite still treats as its rowid alias.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

ID = sa.String(64)
NAME = sa.String(255)
KIND = sa.String(32)

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

workspaces = sa.Table(
    "workspaces",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("platform", KIND, nullable=False),
    sa.Column("external_id", NAME, nullable=False),
    sa.Column("settings", JSON, nullable=False),
    sa.UniqueConstraint("platform", "external_id"),
)

interviews = sa.Table(
    "interviews",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("workspace_id", ID, sa.ForeignKey("workspaces.id"), nullable=False),
    sa.Column("platform", KIND, nullable=False),
    sa.Column("candidate_id", NAME, nullable=False),
    sa.Column("interviewer_id", NAME, nullable=False),
    sa.Column("challenge_slug", NAME, nullable=False),
    sa.Column("time_limit_s", sa.Integer, nullable=False),
    sa.Column("token_budget", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("status", EnumText(Status), nullable=False),
    sa.Column("scheduled_for", UTCDateTime, nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    sa.Column("end_reason", EnumText(EndReason), nullable=True),
    sa.Column("extra_time_s", sa.Integer, nullable=False),
    sa.Column("extra_tokens", sa.Integer, nullable=False),
    sa.Column("paused_total_s", sa.Float, nullable=False),
    sa.Column("paused_since", UTCDateTime, nullable=True),
    sa.Column("tokens_used", sa.Integer, nullable=False),
    sa.Column("tokens_reserved", sa.Integer, nullable=False, server_default="0"),
    sa.Column("warnings_sent", JSON, nullable=False),
    sa.Column("room_key", NAME, nullable=True),
    sa.Column("platform_data", JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("next_prompt_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("turn_growth_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("platform", "room_key", name=ROOM_CONSTRAINT),
)

sa.Index(
    OPEN_CANDIDATE_INDEX,
    interviews.c.workspace_id,
    interviews.c.candidate_id,
    unique=True,
    sqlite_where=interviews.c.status.in_(OPEN_STATUSES),
    postgresql_where=interviews.c.status.in_(OPEN_STATUSES),
)
sa.Index("ix_interviews_status", interviews.c.status)

turns = sa.Table(
    "turns",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column(
        "interview_id",
        ID,
        sa.ForeignKey("interviews.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("author_id", NAME, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("platform_message_id", NAME, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("status", EnumText(TurnStatus), nullable=False),
    sa.Column("reply", sa.Text, nullable=False),
    sa.Column("prompt_tokens", sa.Integer, nullable=False),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("charged_tokens", sa.Integer, nullable=False),
    sa.Column("usage_reported", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("answered_at", UTCDateTime, nullable=True),
    sa.Column("reserved_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("interview_id", "platform_message_id"),
)
sa.Index("ix_turns_status", turns.c.status)

sa.Index("uq_turns_interview_id_seq", turns.c.interview_id, turns.c.seq, unique=True)

audit_events = sa.Table(
    "audit_events",
    metadata,
    # Insertion order, used to order events recorded at the same instant.
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("id", ID, nullable=False, unique=True),
    sa.Column(
        "interview_id",
        ID,
        sa.ForeignKey("interviews.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("actor_id", NAME, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("detail", JSON, nullable=False),
)

sa.Index("ix_audit_events_interview_id_at", audit_events.c.interview_id, audit_events.c.at)

challenges = sa.Table(
    "challenges",
    metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "workspace_id",
        ID,
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"),
        nullable=True,
    ),
    sa.Column("slug", NAME, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("difficulty", KIND, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("time_limit_s", sa.Integer, nullable=True),
    sa.Column("token_budget", sa.Integer, nullable=True),
    sa.Column("rubric", JSON, nullable=False),
    sa.Column("system_prompt", sa.Text, nullable=True),
    sa.Column("model", NAME, nullable=True),
    sa.Column("temperature", sa.Float, nullable=True),
    # Enforced for workspace challenges; NULLs are distinct, hence the index below.
    sa.UniqueConstraint("workspace_id", "slug"),
)

# Global challenges (no workspace): one per slug.
sa.Index(
    "uq_challenges_global_slug",
    challenges.c.slug,
    unique=True,
    sqlite_where=challenges.c.workspace_id.is_(None),
    postgresql_where=challenges.c.workspace_id.is_(None),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("kind", KIND, nullable=False),
    sa.Column("key", NAME, nullable=False, unique=True),
    sa.Column("payload", JSON, nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("claimed_by", NAME, nullable=True),
    sa.Column("claimed_until", UTCDateTime, nullable=True),
    sa.Column("done_at", UTCDateTime, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
)

# The claimer's query: due and not done, earliest first.
sa.Index(
    "ix_jobs_due",
    jobs.c.due_at,
    sqlite_where=jobs.c.done_at.is_(None),
    postgresql_where=jobs.c.done_at.is_(None),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("key", NAME, primary_key=True),
    sa.Column("owner", NAME, nullable=False),
    sa.Column("until", UTCDateTime, nullable=False),
)

rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("key", NAME, primary_key=True),
    # GCRA's "theoretical arrival time" in seconds since the epoch.
    sa.Column("tat", sa.Float, nullable=False),
)

programs = sa.Table(
    "programs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("short_id", KIND, nullable=False),
    sa.Column(
        "workspace_id", ID, sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("platform", KIND, nullable=False),
    sa.Column("candidate_id", NAME, nullable=False),
    sa.Column("interviewer_id", NAME, nullable=False),
    sa.Column("weekday", sa.Integer, nullable=False),
    sa.Column("local_time", KIND, nullable=False),
    sa.Column("timezone", NAME, nullable=False),
    sa.Column("first_date", sa.Date, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("challenge_slug", NAME, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("time_limit_s", sa.Integer, nullable=True),
    sa.Column("token_budget", sa.Integer, nullable=True),
    sa.Column("reminders_s", JSON, nullable=False),
    sa.Column("platform_data", JSON, nullable=False),
    sa.Column("status", EnumText(ProgramStatus), nullable=False),
    # The short id people type is unique within a workspace.
    sa.UniqueConstraint("workspace_id", "short_id"),
)

occurrences = sa.Table(
    "occurrences",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("program_id", ID, sa.ForeignKey("programs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("index", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("status", EnumText(OccurrenceStatus), nullable=False),
    sa.Column("interview_id", ID, nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.UniqueConstraint("program_id", "index"),
)
sa.Index("ix_occurrences_at", occurrences.c.at)

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("id", ID, primary_key=True),
    # One report per interview: the key that makes building it exactly-once.
    sa.Column(
        "interview_id",
        ID,
        sa.ForeignKey("interviews.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    sa.Column(
        "workspace_id", ID, sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("platform", KIND, nullable=False),
    sa.Column("candidate_id", NAME, nullable=False),
    sa.Column("interviewer_id", NAME, nullable=False),
    sa.Column("challenge_slug", NAME, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("metrics", JSON, nullable=False),
    sa.Column("transcript_md", sa.Text, nullable=False),
    sa.Column("chart_png", sa.LargeBinary, nullable=False),
    sa.Column("evaluation", JSON, nullable=True),
    sa.Column("evaluation_error", sa.Text, nullable=True),
    sa.Column("evaluation_label", sa.Text, nullable=True),
    sa.Column("evaluation_tokens", sa.Integer, nullable=False),
    sa.Column("links", JSON, nullable=False),
    sa.Column("delivery", JSON, nullable=False),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
)
# ``/interview report @candidate``: the candidate's newest report in a workspace.
sa.Index(
    "ix_reports_candidate", reports.c.workspace_id, reports.c.candidate_id, reports.c.created_at
)
