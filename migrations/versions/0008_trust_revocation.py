"""trust revocation: keys removed from trust keep a row of their own

Revision ID: 0008
Revises: 0005 (branch assignment: 0003; chained after main's head so the branch has one head)
Create Date: 2026-11-29 08:05:00

A revoked key's row moves from trusted_keys to revoked_keys. The downgrade keeps the table
and its rows (governance data is never dropped on the way down): a client of an older
schema then simply does not trust those keys, since they are no longer in trusted_keys;
upgrading again finds the table in place.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("revoked_keys"):
        return  # kept by an earlier downgrade, rows and all
    op.create_table(
        "revoked_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("added_by", sa.String(length=128), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_by", sa.String(length=128), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_id"),
    )


def downgrade() -> None:
    pass  # revoked keys stay revoked: the table and its rows are kept (see the docstring)
