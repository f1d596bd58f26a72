"""`registry db upgrade`: apply schema migrations to a shared database, explicitly."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx


@click.group("db")
def db() -> None:
    """The registry database's schema."""


@db.command("upgrade")
@pass_ctx
def upgrade(ctx) -> None:
    """Apply pending schema migrations (shared databases are never upgraded implicitly).

    \b
    Example (once every client runs the new package):
      registry db upgrade
    """
    from registry import db as dbmod
    from registry.api import Registry
    from registry.cli.common import home_path
    from registry.config import Config

    reg = Registry(Config.load(home_path(ctx)))
    before = dbmod.current_revision(reg.engine)
    after = reg.upgrade(migrate=True)
    reg.audit_now("db.upgrade", str(reg.home), {"from": before, "to": after})
    emit(ctx, {"from": before, "to": after}, f"database schema {before} -> {after}")


COMMANDS = [db]
