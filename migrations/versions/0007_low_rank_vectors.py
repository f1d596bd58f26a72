"""low-rank vectors: a vector's rank, a tensor's factor record

Revision ID: 0007
Revises: 0003
Create Date: 2026-11-29 08:10:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("vectors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rank", sa.Integer(), nullable=True))
    with op.batch_alter_table("vector_tensors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("factors", sa.JSON(), nullable=True))


def downgrade() -> None:
    # dense vectors lose nothing (both columns are NULL for them); a low-rank vector cannot be
    # read without them, so the downgrade refuses instead of dropping its record
    bind = op.get_bind()
    low = bind.execute(sa.text("SELECT COUNT(*) FROM vectors WHERE rank IS NOT NULL")).scalar()
    if low:
        raise RuntimeError(
            f"{low} vector(s) are stored in low-rank form, which earlier versions cannot read; "
            "remove them (or keep this version) before downgrading"
        )
    with op.batch_alter_table("vector_tensors", schema=None) as batch_op:
        batch_op.drop_column("factors")
    with op.batch_alter_table("vectors", schema=None) as batch_op:
        batch_op.drop_column("rank")
