"""team policy in the database; how each audit row's actor was established; replaced materializations

Revision ID: 0004
Revises: 0005
Create Date: 2026-11-29 08:20:00

Team policy (four-eyes, protected aliases, interference policy, who may declare an actor,
admins) moves from each user's registry.toml into `team_policy`; the first open after this
upgrade moves an existing registry.toml's settings in (registry.db.policy.import_legacy).
The account that ran `init` (its audit row) becomes the first admin.

Downgrade keeps the table and the column (governance data is never dropped); upgrading
again finds them and keeps what they hold.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
# assigned "0003"; chained after 0005 (console accounts), main's head when this merged
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if "team_policy" not in inspector.get_table_names():
        op.create_table(
            "team_policy",
            sa.Column("key", sa.String(length=64), nullable=False),
            sa.Column("value", sa.JSON(), nullable=True),
            sa.Column("set_by", sa.String(length=128), nullable=False),
            sa.Column("set_at", sa.DateTime(), nullable=False),
            sa.PrimaryKeyConstraint("key"),
        )
    if "replaced_at" not in {c["name"] for c in inspector.get_columns("materializations")}:
        with op.batch_alter_table("materializations", schema=None) as batch_op:
            batch_op.add_column(sa.Column("replaced_at", sa.DateTime(), nullable=True))
    audit_columns = {c["name"] for c in inspector.get_columns("audit_events")}
    if "actor_source" not in audit_columns:
        with op.batch_alter_table("audit_events", schema=None) as batch_op:
            batch_op.add_column(sa.Column("actor_source", sa.String(length=16), nullable=True))
            batch_op.add_column(sa.Column("authenticated_as", sa.String(length=128), nullable=True))
    policy = sa.table(
        "team_policy",
        sa.column("key", sa.String),
        sa.column("value", sa.JSON),
        sa.column("set_by", sa.String),
        sa.column("set_at", sa.DateTime),
    )
    if bind.execute(sa.select(policy.c.key).where(policy.c.key == "admins")).first() is None:
        creator = bind.execute(
            sa.text("SELECT actor FROM audit_events WHERE action = 'init' ORDER BY id LIMIT 1")
        ).scalar()
        if creator:
            op.bulk_insert(
                policy,
                [
                    {
                        "key": "admins",
                        "value": [creator],
                        "set_by": "migration 0004",
                        "set_at": datetime.now(UTC).replace(tzinfo=None),
                    }
                ],
            )


def downgrade() -> None:
    # governance data is never dropped: 0003's schema ignores the table and the column
    pass
