"""Evaluation reports, one per interview.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
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
        "reports",
        sa.Column("id", ID, nullable=False),
        sa.Column("interview_id", ID, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("platform", KIND, nullable=False),
        sa.Column("candidate_id", NAME, nullable=False),
        sa.Column("interviewer_id", NAME, nullable=False),
        sa.Column("challenge_slug", NAME, nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("transcript_md", sa.Text(), nullable=False),
        sa.Column("chart_png", sa.LargeBinary(), nullable=False),
        sa.Column("evaluation", JSON, nullable=True),
        sa.Column("evaluation_error", sa.Text(), nullable=True),
        sa.Column("evaluation_label", sa.Text(), nullable=True),
        sa.Column("evaluation_tokens", sa.Integer(), nullable=False),
        sa.Column("links", JSON, nullable=False),
        sa.Column("delivery", JSON, nullable=False),
        sa.Column("delivered_at", _timestamp(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
        sa.ForeignKeyConstraint(
            ["interview_id"],
            ["interviews.id"],
            name="fk_reports_interview_id_interviews",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name="fk_reports_workspace_id_workspaces",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("interview_id", name="uq_reports_interview_id"),
    )
    op.create_index(
        "ix_reports_candidate", "reports", ["workspace_id", "candidate_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_reports_candidate", table_name="reports")
    op.drop_table("reports")
