"""authorship across registries: who imported a vector or recipe, beside who created it

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 12:00:00

A bundle carries its items' creators (`created_by`, as the source recorded them); the
account that imported them is kept in `imported_by`, and four-eyes refuses both as
approvers. The downgrade keeps the columns (an older client ignores them; dropping them
would forget who imported what), so the upgrade adds only what is missing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("vectors", "recipes")


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table in TABLES:
        if "imported_by" in {c["name"] for c in inspector.get_columns(table)}:
            continue  # kept by an earlier downgrade
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("imported_by", sa.String(length=128), nullable=True))


def downgrade() -> None:
    """Nothing to undo that an older client would trip over: the nullable columns stay."""
