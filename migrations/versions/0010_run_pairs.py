"""generated preference pairs kept with their training run

Revision ID: 0010
Revises: 0004
Create Date: 2026-12-07 05:40:00

A run whose plugin defines its preference by instructions has the pinned base write the
pairs; they are kept here (the kept ones and the dropped ones, with why), so the run can be
audited and replayed: `registry run pairs RUN`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_pairs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("chosen", sa.Text(), nullable=False),
        sa.Column("rejected", sa.Text(), nullable=False),
        sa.Column("contrast", sa.Integer(), nullable=True),
        sa.Column("kept", sa.Boolean(), nullable=False),
        sa.Column("dropped_because", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["training_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "position"),
    )
    op.create_index("ix_run_pairs_run_id", "run_pairs", ["run_id"])


def downgrade() -> None:
    # these rows are lineage: a downgrade that would drop them refuses
    conn = op.get_bind()
    if conn.execute(sa.text("SELECT COUNT(*) FROM run_pairs")).scalar():
        raise RuntimeError("run_pairs holds generated pairs; downgrading would lose a run's lineage")
    op.drop_index("ix_run_pairs_run_id", table_name="run_pairs")
    op.drop_table("run_pairs")
