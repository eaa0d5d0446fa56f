"""Many processes, one truth: token reservations, durable jobs, leases, shared rate limits.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.String(64)
NAME = sa.String(255)
KIND = sa.String(32)


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("interviews") as batch:
        batch.add_column(
            sa.Column("tokens_reserved", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("turns") as batch:
        batch.add_column(
            sa.Column("reserved_tokens", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_index("ix_turns_status", "turns", ["status"])
    op.create_table(
        "jobs",
        sa.Column("id", ID, nullable=False),
        sa.Column("kind", KIND, nullable=False),
        sa.Column("key", NAME, nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("due_at", _timestamp(), nullable=False),
        sa.Column("claimed_by", NAME, nullable=True),
        sa.Column("claimed_until", _timestamp(), nullable=True),
        sa.Column("done_at", _timestamp(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("key", name="uq_jobs_key"),
    )
    op.create_index(
        "ix_jobs_due",
        "jobs",
        ["due_at"],
        sqlite_where=sa.text("done_at IS NULL"),
        postgresql_where=sa.text("done_at IS NULL"),
    )
    op.create_table(
        "leases",
        sa.Column("key", NAME, nullable=False),
        sa.Column("owner", NAME, nullable=False),
        sa.Column("until", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_leases"),
    )
    op.create_table(
        "rate_limits",
        sa.Column("key", NAME, nullable=False),
        sa.Column("tat", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_rate_limits"),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
    op.drop_table("leases")
    op.drop_index("ix_jobs_due", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_turns_status", table_name="turns")
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("reserved_tokens")
    with op.batch_alter_table("interviews") as batch:
        batch.drop_column("tokens_reserved")
