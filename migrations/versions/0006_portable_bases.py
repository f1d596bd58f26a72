"""portable bases: per-host base locations, the Hub commit a revision resolved to

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-29 08:30:00

Downgrade keeps both (the older code ignores them), so no host's location and no resolved
commit is lost; upgrade again finds them in place.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "revision_sha" not in {c["name"] for c in inspector.get_columns("base_models")}:
        with op.batch_alter_table("base_models", schema=None) as batch_op:
            batch_op.add_column(sa.Column("revision_sha", sa.String(length=64), nullable=True))
    if not inspector.has_table("base_locations"):
        op.create_table(
            "base_locations",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("base_id", sa.Integer(), nullable=False),
            sa.Column("host", sa.String(length=255), nullable=False),
            sa.Column("path", sa.Text(), nullable=False),
            sa.Column("located_by", sa.String(length=128), nullable=False),
            sa.Column("located_at", sa.DateTime(), nullable=False),
            sa.ForeignKeyConstraint(["base_id"], ["base_models.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("base_id", "host"),
        )
        op.create_index("ix_base_locations_base_id", "base_locations", ["base_id"])


def downgrade() -> None:
    """Nothing is dropped: the locations and resolved commits stay for the next upgrade."""
