"""`registry verify`, `registry gc`, `registry db …`: keeping the registry sound."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx


@click.command("verify")
@click.option(
    "--lock",
    "lock",
    type=click.Path(dir_okay=False),
    help="Check a materialized folder's registry-lock.json instead.",
)
@pass_ctx
def verify(ctx, lock: str | None) -> None:
    """Check the database, then re-hash every pinned base file and every stored vector array.

    The database check is SQLite's integrity_check and foreign_key_check (on PostgreSQL:
    every table present), and every vector row's tensors present in the store.

    \b
    Example (in a deployment pipeline):
      registry verify --lock models/helpful-safe/registry-lock.json
    """
    from registry.errors import DatabaseCorrupted

    try:
        reg = ctx.registry
    except DatabaseCorrupted as e:
        problems = e.problems or [str(e)]
        emit(ctx, {"ok": False, "problems": problems, "orphans": []}, "\n".join(problems))
        raise
    if lock:
        problems = reg.verify_lock(lock)
        emit(
            ctx,
            {"ok": not problems, "problems": problems},
            "\n".join(problems) or f"ok: {lock} matches its folder and the registry",
        )
        if problems:
            raise click.ClickException(f"lock check found {len(problems)} problem(s)")
        return
    problems = reg.verify()
    orphans = reg.orphans()
    data = {"ok": not problems, "problems": problems, "orphans": orphans}
    human = (
        "\n".join(problems)
        if problems
        else "ok: the database is sound; every pinned file and stored array matches its digest"
    )
    if orphans:
        human += f"\n{len(orphans)} unreferenced store group(s) (left by interrupted writes; `registry gc` removes them)"
    emit(ctx, data, human)
    if problems:
        raise click.ClickException(f"verify found {len(problems)} problem(s)")


@click.command("gc")
@click.option(
    "--grace",
    type=float,
    default=3600,
    show_default=True,
    help="Keep data younger than this many seconds (writes in progress).",
)
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option(
    "--force",
    is_flag=True,
    help="Also collect archived vectors that are approved, behind an alias or named by a "
    "materialization's lock (policy admins only); never one a live recipe uses.",
)
@pass_ctx
def gc(ctx, grace, dry_run, force) -> None:
    """Remove store data no committed row references, the store data of archived vectors
    nothing live needs, and unfinished `.OUT.tmp-*` output folders beside recorded outputs.

    \b
    Examples:
      registry archive --vector helpful@v1
      registry gc --dry-run
      registry gc
    """
    report = ctx.registry.gc(grace, dry_run, force)
    verb = "would free" if dry_run else "freed"
    human = f"{verb} {report['freed_bytes']:,} bytes: {len(report['archived'])} archived vector(s), {len(report['removed'])} store group(s), {len(report['scratch'])} scratch folder(s), {len(report['outputs'])} unfinished output folder(s); {len(report['interrupted_runs'])} interrupted run(s) marked failed"
    lines = [f"  {a['ref']} (base {a['base']}): {a['bytes']:,} bytes" for a in report["archived"]]
    lines += [f"  kept {k['ref']} (base {k['base']}): {'; '.join(k['why'])}" for k in report["kept"]]
    emit(
        ctx, report, "\n".join([human, *lines, *(f"  {k}" for k in [*report["removed"], *report["outputs"]])])
    )


@click.group("db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command("upgrade")
@pass_ctx
def db_upgrade(ctx) -> None:
    """Apply pending Alembic migrations (SQLite homes also upgrade on open; shared databases only here).

    \b
    Example (once every client of the shared database runs the new package):
      registry db upgrade
    """
    from registry.api import Registry
    from registry.cli.common import home_path
    from registry.config import Config
    from registry.db import engine as dbmod

    reg = Registry(Config.load(home_path(ctx)))  # not Registry.open: it refuses an older schema
    before = dbmod.current_revision(reg.engine)
    rev = reg.upgrade(migrate=True)
    if before != rev:
        reg.audit_now("db.upgrade", str(reg.home), {"from": before, "to": rev})
    emit(ctx, {"revision": rev, "from": before}, f"database at revision {rev} (was {before})")


@db_group.command("grants")
@click.argument("role")
@pass_ctx
def db_grants(ctx, role: str) -> None:
    """Print the SQL that lets PostgreSQL login ROLE use this registry (for the owner to run).

    Each person and CI job logs in as itself (the audit log's actor is the login); a login
    without these grants is refused with "permission denied". Rows only: schema changes stay
    with the owner (`registry db upgrade`).

    \b
    Example (as the login that ran init):
      registry db grants alice | psql -h db.internal -d prefs
    """
    from registry.api import Registry
    from registry.cli.common import home_path
    from registry.config import Config
    from registry.db.grants import grant_statements

    reg = Registry(Config.load(home_path(ctx)))  # like db upgrade: needs the database, not the open
    statements = grant_statements(reg.engine, role)
    none = "-- SQLite: no grants; whoever may write the database file may use the registry"
    emit(ctx, {"role": role, "statements": statements}, "\n".join(statements) or none)


COMMANDS = [verify, gc, db_group]
