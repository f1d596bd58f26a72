"""`registry plugins list`: the installed preference plugins."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx, table


@click.group("plugins")
def plugins_group() -> None:
    """Preference plugins (entry-point group `registry.plugins`)."""


@plugins_group.command("list")
@pass_ctx
def plugins_list(ctx) -> None:
    """List installed preference plugins."""
    from registry.plugins.loader import describe

    rows = describe()
    emit(
        ctx,
        rows,
        table(rows, ["name", "version", "description"]) if rows else "no plugins installed",
    )


COMMANDS = [plugins_group]
