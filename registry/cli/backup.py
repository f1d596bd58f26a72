"""`registry backup DEST`: a consistent copy of the registry that opens as a registry."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx


@click.command("backup")
@click.argument("dest", type=click.Path(file_okay=False))
@pass_ctx
def backup(ctx, dest: str) -> None:
    """Copy the SQLite database (online, safe while others write) and the store into DEST.

    DEST gets registry.db, vectors.zarr and registry.toml: check it with
    `registry --home DEST verify`; restore by copying them back (or use --home DEST).
    On PostgreSQL use `pg_dump --format=custom` and copy the store (docs/reliability.md).

    \b
    Example:
      registry backup backups/2025-06-01
    """
    d = ctx.registry.backup(dest)
    emit(ctx, d, f"backed up to {d['dest']} ({d['bytes']:,} bytes): registry.db, vectors.zarr, registry.toml")


COMMANDS = [backup]
