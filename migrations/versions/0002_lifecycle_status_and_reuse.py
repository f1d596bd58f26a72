"""lifecycle status and materialization reuse

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:21:35.017617

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("materializations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reused_from_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_materializations_reused_from", "materializations", ["reused_from_id"], ["id"]
        )

    with op.batch_alter_table("recipes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("status_actor", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("status_at", sa.DateTime(), nullable=True))

    with op.batch_alter_table("vectors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("status_actor", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("status_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("vectors", schema=None) as batch_op:
        batch_op.drop_column("status_at")
        batch_op.drop_column("status_actor")
        batch_op.drop_column("status_reason")

    with op.batch_alter_table("recipes", schema=None) as batch_op:
        batch_op.drop_column("status_at")
        batch_op.drop_column("status_actor")
        batch_op.drop_column("status_reason")

    with op.batch_alter_table("materializations", schema=None) as batch_op:
        batch_op.drop_constraint("fk_materializations_reused_from", type_="foreignkey")
        batch_op.drop_column("reused_from_id")
