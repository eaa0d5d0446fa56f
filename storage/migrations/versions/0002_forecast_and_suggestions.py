"""Token forecast inputs on interviews; challenges' suggested limits become optional.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("interviews") as batch:
        # Prompt size of the next (empty) message and the average growth per answered turn:
        # what the "about N more messages fit" forecast is computed from.
        batch.add_column(
            sa.Column("next_prompt_tokens", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("turn_growth_tokens", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("challenges") as batch:
        # NULL: the challenge suggests nothing, the bot's defaults apply.
        batch.alter_column("time_limit_s", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("token_budget", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("challenges") as batch:
        batch.alter_column("token_budget", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("time_limit_s", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("interviews") as batch:
        batch.drop_column("turn_growth_tokens")
        batch.drop_column("next_prompt_tokens")
