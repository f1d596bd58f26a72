"""recorded behaviour evaluations of vectors and recipes

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 08:00:00

`registry sweep REF --record` keeps what it measured: the subject's digest, its base's
digest, the evaluators and their versions, the prompts, decoding, the η grid, every metric
at every grid point and a few sample answers per point. Approval may require one
(`approval_requires_evaluation`), and bundles carry them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject_ref", sa.String(length=160), nullable=False),
        sa.Column("subject_digest", sa.String(length=64), nullable=False),
        sa.Column("base_name", sa.String(length=128), nullable=False),
        sa.Column("base_digest", sa.String(length=64), nullable=False),
        sa.Column("evaluators", sa.JSON(), nullable=False),
        sa.Column("prompts_digest", sa.String(length=64), nullable=False),
        sa.Column("prompts_source", sa.Text(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("decoding", sa.JSON(), nullable=False),
        sa.Column("grid", sa.JSON(), nullable=False),
        sa.Column("points", sa.JSON(), nullable=False),
        sa.Column("library_versions", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("imported_by", sa.String(length=128), nullable=True),
        sa.Column("signed_by", sa.String(length=64), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_evaluations_subject", "evaluations", ["subject_kind", "subject_digest"])


def downgrade() -> None:
    # recorded evidence behind approvals: a downgrade that would drop it refuses
    conn = op.get_bind()
    if conn.execute(sa.text("SELECT COUNT(*) FROM evaluations")).scalar():
        raise RuntimeError("evaluations holds recorded evaluations; downgrading would lose approval evidence")
    op.drop_index("ix_evaluations_subject", table_name="evaluations")
    op.drop_table("evaluations")
