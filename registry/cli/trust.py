"""`registry trust add|list`: the public keys whose signed approvals survive a bundle import."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx, table


@click.group("trust")
def trust() -> None:
    """Public keys this registry trusts for signed approvals."""


@trust.command("add")
@click.argument("keyfile", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="A label for the key (default: the file name).")
@pass_ctx
def add(ctx, keyfile: str, name: str | None) -> None:
    """Trust the elliptic-curve public key in KEYFILE (PEM).

    \b
    Example:
      registry trust add release-team.pub
    """
    k = ctx.registry.trust(keyfile, name)
    emit(ctx, {"key_id": k.key_id, "name": k.name}, f"trusting key {k.key_id[:16]} ({k.name})")


@trust.command("list")
@pass_ctx
def list_keys(ctx) -> None:
    """Keys this registry trusts."""
    from registry.governance.signing import list_trusted

    rows = [
        {"key_id": k.key_id, "name": k.name, "added_by": k.added_by, "added_at": k.added_at.isoformat()}
        for k in list_trusted(ctx.registry)
    ]
    emit(ctx, rows, table(rows, ["key_id", "name", "added_by", "added_at"]) if rows else "no trusted keys")


COMMANDS = [trust]
