"""Weekly programs and their occurrences (the scheduler).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.String(64)
NAME = sa.String(255)
KIND = sa.String(32)


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "programs",
        sa.Column("id", ID, nullable=False),
        sa.Column("short_id", KIND, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("platform", KIND, nullable=False),
        sa.Column("candidate_id", NAME, nullable=False),
        sa.Column("interviewer_id", NAME, nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("local_time", KIND, nullable=False),
        sa.Column("timezone", NAME, nullable=False),
        sa.Column("first_date", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("challenge_slug", NAME, nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("time_limit_s", sa.Integer(), nullable=True),
        sa.Column("token_budget", sa.Integer(), nullable=True),
        sa.Column("reminders_s", JSON, nullable=False),
        sa.Column("platform_data", JSON, nullable=False),
        sa.Column("status", KIND, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_programs"),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name="fk_programs_workspace_id_workspaces",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("workspace_id", "short_id", name="uq_programs_workspace_id_short_id"),
    )
    op.create_table(
        "occurrences",
        sa.Column("id", ID, nullable=False),
        sa.Column("program_id", ID, nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("status", KIND, nullable=False),
        sa.Column("interview_id", ID, nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_occurrences"),
        sa.ForeignKeyConstraint(
            ["program_id"],
            ["programs.id"],
            name="fk_occurrences_program_id_programs",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("program_id", "index", name="uq_occurrences_program_id_index"),
    )
    op.create_index("ix_occurrences_at", "occurrences", ["at"])


def downgrade() -> None:
    op.drop_index("ix_occurrences_at", table_name="occurrences")
    op.drop_table("occurrences")
    op.drop_table("programs")
