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
    # idempotent: a downgrade keeps these columns and tables (governance data), so an
    # upgrade after it finds them in place and keeps what they hold
    inspector = sa.inspect(op.get_bind())
    tables = set(inspector.get_table_names())
    for table, column in (
        ("recipes", sa.Column("created_by", sa.String(length=128), nullable=True)),
        ("vectors", sa.Column("created_by", sa.String(length=128), nullable=True)),
        ("training_runs", sa.Column("heartbeat_at", sa.DateTime(), nullable=True)),
    ):
        if column.name not in {c["name"] for c in inspector.get_columns(table)}:
            with op.batch_alter_table(table, schema=None) as batch_op:
                batch_op.add_column(column)
    if "signatures" not in tables:
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
    if "trusted_keys" not in tables:
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
    """Keep creators, signatures and trusted keys: dropping them switched four-eyes off.

    0002's schema ignores the extra columns and tables (its rows leave created_by NULL,
    which the four-eyes rule treats as an unknown creator, never as "anyone may approve").
    """
