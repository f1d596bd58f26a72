"""`registry init`: create a registry (database schema and vector store)."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx


@click.command("init")
@click.option("--db", help="SQLAlchemy URL (default: sqlite:///registry.db under home).")
@click.option("--store", help="Vector store location (default: vectors.zarr under home).")
@click.option(
    "--allow-declared-actor",
    is_flag=True,
    help="New registry only: its team policy accepts REGISTRY_ACTOR / --actor names "
    "(tests, one-person setups); otherwise the actor is the database login or OS user.",
)
@pass_ctx
def init(ctx, db: str | None, store: str | None, allow_declared_actor: bool) -> None:
    """Create a registry (database schema through Alembic, and the vector store).

    On a database that already holds a registry (a shared server), init joins it: the new
    home uses the store that database records (a different --store is refused).

    \b
    The account that runs it (database login, else OS user) becomes the team policy's
    first admin (`registry policy show`).

    \b
    Example:
      registry --home ./reg init --db postgresql+psycopg://postgres@127.0.0.1/test
    """
    from registry.api import Registry
    from registry.cli.common import home_path

    policy = {"allow_declared_actor": True} if allow_declared_actor else None
    reg = Registry.init(home_path(ctx), db=db, store=store, policy=policy)
    emit(
        ctx,
        {
            "home": str(reg.home),
            "db": reg.config.db,
            "store": reg.config.store,
            "id": reg.id,
            "joined": reg.joined,
            "admin": reg.actor,
        },
        f"joined registry {reg.id[:8]} (store {reg.config.store}) at {reg.home}"
        if reg.joined
        else f"initialized registry {reg.id[:8]} at {reg.home} (policy admin: {reg.actor})",
    )


COMMANDS = [init]
