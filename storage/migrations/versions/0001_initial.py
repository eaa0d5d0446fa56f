"""Initial schema: workspaces, interviews, turns, audit events, custom challenges.

Revision ID: 0001
Revises:
Create Date: 2026-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types are spelled out here (not imported from storage.tables) so that this revision keeps
# describing the schema it created even after tables.py moves on.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID = sa.String(64)
NAME = sa.String(255)
KIND = sa.String(32)


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", ID, nullable=False),
        sa.Column("platform", KIND, nullable=False),
        sa.Column("external_id", NAME, nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workspaces"),
        sa.UniqueConstraint("platform", "external_id", name="uq_workspaces_platform_external_id"),
    )

    op.create_table(
        "interviews",
        sa.Column("id", ID, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("platform", KIND, nullable=False),
        sa.Column("candidate_id", NAME, nullable=False),
        sa.Column("interviewer_id", NAME, nullable=False),
        sa.Column("challenge_slug", NAME, nullable=False),
        sa.Column("time_limit_s", sa.Integer(), nullable=False),
        sa.Column("token_budget", sa.Integer(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("status", KIND, nullable=False),
        sa.Column("scheduled_for", _timestamp(), nullable=True),
        sa.Column("started_at", _timestamp(), nullable=True),
        sa.Column("ended_at", _timestamp(), nullable=True),
        sa.Column("end_reason", KIND, nullable=True),
        sa.Column("extra_time_s", sa.Integer(), nullable=False),
        sa.Column("extra_tokens", sa.Integer(), nullable=False),
        sa.Column("paused_total_s", sa.Float(), nullable=False),
        sa.Column("paused_since", _timestamp(), nullable=True),
        sa.Column("tokens_used", sa.Integer(), nullable=False),
        sa.Column("warnings_sent", JSON, nullable=False),
        sa.Column("room_key", NAME, nullable=True),
        sa.Column("platform_data", JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_interviews"),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name="fk_interviews_workspace_id_workspaces",
        ),
        sa.UniqueConstraint("platform", "room_key", name="uq_interviews_platform_room_key"),
    )
    op.create_index("ix_interviews_status", "interviews", ["status"])
    # At most one open (active or paused) interview per candidate and workspace.
    open_only = sa.text("status IN ('active', 'paused')")
    op.create_index(
        "uq_interviews_open_candidate",
        "interviews",
        ["workspace_id", "candidate_id"],
        unique=True,
        sqlite_where=open_only,
        postgresql_where=open_only,
    )

    op.create_table(
        "turns",
        sa.Column("id", ID, nullable=False),
        sa.Column("interview_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("author_id", NAME, nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("platform_message_id", NAME, nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("status", KIND, nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("charged_tokens", sa.Integer(), nullable=False),
        sa.Column("usage_reported", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("answered_at", _timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_turns"),
        sa.ForeignKeyConstraint(
            ["interview_id"],
            ["interviews.id"],
            name="fk_turns_interview_id_interviews",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "interview_id",
            "platform_message_id",
            name="uq_turns_interview_id_platform_message_id",
        ),
    )
    op.create_index("uq_turns_interview_id_seq", "turns", ["interview_id", "seq"], unique=True)

    op.create_table(
        "audit_events",
        sa.Column("seq", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("interview_id", ID, nullable=False),
        sa.Column("actor_id", NAME, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
        sa.ForeignKeyConstraint(
            ["interview_id"],
            ["interviews.id"],
            name="fk_audit_events_interview_id_interviews",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("id", name="uq_audit_events_id"),
    )
    op.create_index("ix_audit_events_interview_id_at", "audit_events", ["interview_id", "at"])

    op.create_table(
        "challenges",
        sa.Column("seq", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=True),
        sa.Column("slug", NAME, nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("difficulty", KIND, nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("time_limit_s", sa.Integer(), nullable=False),
        sa.Column("token_budget", sa.Integer(), nullable=False),
        sa.Column("rubric", JSON, nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("model", NAME, nullable=True),
        sa.Column("temperature", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_challenges"),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name="fk_challenges_workspace_id_workspaces",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("workspace_id", "slug", name="uq_challenges_workspace_id_slug"),
    )
    # Global challenges (no workspace) are unique by slug; NULLs escape the constraint above.
    global_only = sa.text("workspace_id IS NULL")
    op.create_index(
        "uq_challenges_global_slug",
        "challenges",
        ["slug"],
        unique=True,
        sqlite_where=global_only,
        postgresql_where=global_only,
    )


def downgrade() -> None:
    op.drop_table("challenges")
    op.drop_table("audit_events")
    op.drop_table("turns")
    op.drop_table("interviews")
    op.drop_table("workspaces")
