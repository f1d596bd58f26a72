"""tags, descriptions and archiving of vectors and recipes; gc of archived vectors' data

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 08:00:00

`vector_tags` / `recipe_tags` hold key=value tags (one value per key and version);
`description` is free text beside them. `archived_at` / `archived_by` hide a version from
lists while its exact NAME@vN still resolves; `collected_at` records that `registry gc`
removed an archived vector's store data (its rows, digests and lineage stay).

The downgrade refuses while a version is archived (an older client would list it and
resolve bare names to it, or read data gc removed); otherwise it keeps the nullable columns
and the tag tables, which an older client ignores, and the upgrade adds only what is missing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "vectors": ("description", "archived_at", "archived_by", "collected_at"),
    "recipes": ("description", "archived_at", "archived_by"),
}
TYPES = {
    "description": sa.Text,
    "archived_at": sa.DateTime,
    "archived_by": lambda: sa.String(length=128),
    "collected_at": sa.DateTime,
}


def _tag_table(name: str, owner: str, owner_table: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(owner, sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("set_by", sa.String(length=128), nullable=True),
        sa.Column("set_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint([owner], [f"{owner_table}.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(owner, "key"),
    )
    op.create_index(f"ix_{name}_{owner}", name, [owner])
    op.create_index(f"ix_{name}_key", name, ["key"])


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table, columns in COLUMNS.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        missing = [c for c in columns if c not in present]
        if not missing:
            continue  # kept by an earlier downgrade
        with op.batch_alter_table(table, schema=None) as batch_op:
            for c in missing:
                batch_op.add_column(sa.Column(c, TYPES[c](), nullable=True))
    tables = set(inspector.get_table_names())
    if "vector_tags" not in tables:
        _tag_table("vector_tags", "vector_id", "vectors")
    if "recipe_tags" not in tables:
        _tag_table("recipe_tags", "recipe_id", "recipes")


def downgrade() -> None:
    conn = op.get_bind()
    for table in COLUMNS:
        n = conn.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE archived_at IS NOT NULL")).scalar()
        if n:
            raise RuntimeError(
                f"{n} {table[:-1]} version(s) are archived: an older client would list them and "
                "resolve bare names to them; unarchive them (or keep this schema) first"
            )
