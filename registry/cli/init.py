"""`registry init`: create a registry (database schema and vector store)."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx


@click.command("init")
@click.option("--db", help="SQLAlchemy URL (default: sqlite:///registry.db under home).")
@click.option("--store", help="Vector store location (default: vectors.zarr under home).")
@pass_ctx
def init(ctx, db: str | None, store: str | None) -> None:
    """Create a registry (database schema through Alembic, and the vector store).

    On a database that already holds a registry (a shared server), init joins it: the new
    home uses the store that database records (a different --store is refused).

    \b
    Example:
      registry --home ./reg init --db postgresql+psycopg://postgres@127.0.0.1/test
    """
    from registry.api import Registry
    from registry.cli.common import home_path

    reg = Registry.init(home_path(ctx), db=db, store=store)
    emit(
        ctx,
        {
            "home": str(reg.home),
            "db": reg.config.db,
            "store": reg.config.store,
            "id": reg.id,
            "joined": reg.joined,
        },
        f"joined registry {reg.id[:8]} (store {reg.config.store}) at {reg.home}"
        if reg.joined
        else f"initialized registry {reg.id[:8]} at {reg.home}",
    )


COMMANDS = [init]
