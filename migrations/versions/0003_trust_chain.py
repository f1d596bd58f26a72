"""trust chain: creators, run heartbeats, signatures, trusted keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 19:45:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recipes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.String(length=128), nullable=True))
    with op.batch_alter_table("vectors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.String(length=128), nullable=True))
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
    op.create_table(
        "signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("statement", sa.JSON(), nullable=False),
        sa.Column("bundle", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_signatures_object_id", "signatures", ["object_id"])
    op.create_table(
        "trusted_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(length=128), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_id"),
    )


def downgrade() -> None:
    op.drop_table("trusted_keys")
    op.drop_index("ix_signatures_object_id", table_name="signatures")
    op.drop_table("signatures")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
    with op.batch_alter_table("vectors", schema=None) as batch_op:
        batch_op.drop_column("created_by")
    with op.batch_alter_table("recipes", schema=None) as batch_op:
        batch_op.drop_column("created_by")
