"""registry identity: the database records its registry id and vector store

Revision ID: 0009
Revises: 0003
Create Date: 2026-11-29 08:10:00

A second home that runs `registry init --db URL` on a database another registry already uses
joins that registry's store instead of creating an empty one beside it. Databases from before
this revision get their registry id copied in; the store is recorded by the next open.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEPT_KEY = "store_url"  # where a downgrade keeps the recorded store, so no data is lost


def upgrade() -> None:
    op.create_table(
        "registry_identity",
        sa.Column("registry_id", sa.String(length=64), nullable=False),
        sa.Column("store", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("registry_id"),
    )
    conn = op.get_bind()
    meta = dict(conn.execute(sa.text("SELECT key, value FROM registry_meta")).fetchall())
    if "registry_id" in meta:
        conn.execute(
            sa.text(
                "INSERT INTO registry_identity (registry_id, store, recorded_at, recorded_by) "
                "VALUES (:id, :store, CURRENT_TIMESTAMP, :by)"
            ),
            {"id": meta["registry_id"], "store": meta.get(KEPT_KEY), "by": "migration 0009"},
        )
    conn.execute(sa.text("DELETE FROM registry_meta WHERE key = :k"), {"k": KEPT_KEY})


def downgrade() -> None:
    conn = op.get_bind()
    row = conn.execute(sa.text("SELECT store FROM registry_identity WHERE store IS NOT NULL")).first()
    if row is not None:  # kept in the older schema's key/value table; the upgrade reads it back
        conn.execute(sa.text("DELETE FROM registry_meta WHERE key = :k"), {"k": KEPT_KEY})
        conn.execute(
            sa.text("INSERT INTO registry_meta (key, value) VALUES (:k, :v)"), {"k": KEPT_KEY, "v": row[0]}
        )
    op.drop_table("registry_identity")
