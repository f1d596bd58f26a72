"""`registry trust add|list|remove`: the public keys whose signed approvals survive a bundle import."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx, table
from registry.db import listings as catalog


@click.group("trust")
def trust() -> None:
    """Public keys this registry trusts for signed approvals."""


@trust.command("add")
@click.argument("keyfile", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="A label for the key (default: the file name).")
@pass_ctx
def add(ctx, keyfile: str, name: str | None) -> None:
    """Trust the elliptic-curve public key in KEYFILE (PEM). Policy admins only.

    \b
    Example:
      registry trust add release-team.pub
    """
    k = ctx.registry.trust(keyfile, name)
    emit(ctx, {"key_id": k.key_id, "name": k.name}, f"trusting key {k.key_id[:16]} ({k.name})")


@trust.command("list")
@pass_ctx
def list_keys(ctx) -> None:
    """Keys this registry trusts, and those revoked (whose signatures no longer count)."""
    from registry.db.as_json import timestamp

    found = ctx.fast(catalog.trusted)
    if found is None:
        from registry.governance.revocation import list_revoked
        from registry.governance.signing import list_trusted

        found = list_trusted(ctx.registry), list_revoked(ctx.registry)
    trusted, revoked = found
    rows = [
        {"key_id": k.key_id, "name": k.name, "status": "trusted", "added_by": k.added_by,
         "added_at": timestamp(k.added_at), "revoked_by": None, "revoked_at": None}
        for k in trusted
    ] + [
        {"key_id": k.key_id, "name": k.name, "status": "revoked", "added_by": k.added_by,
         "added_at": timestamp(k.added_at), "revoked_by": k.revoked_by, "revoked_at": timestamp(k.revoked_at)}
        for k in revoked
    ]  # fmt: skip
    columns = ["key_id", "name", "status", "added_by", "added_at", "revoked_by"]
    emit(ctx, rows, table(rows, columns) if rows else "no trusted keys")


@trust.command("remove")
@click.argument("key")
@click.option("--reason", help="Why the key is revoked (kept in the audit log).")
@pass_ctx
def remove(ctx, key: str, reason: str | None) -> None:
    """Revoke KEY (a key id or unique prefix of 8+ digits, a key name, or the key file). Admins only.

    Signatures by a revoked key stop counting at once: imported approvals that rested on it
    fall back to draft (audited). A revoked key cannot be trusted again.

    \b
    Example:
      registry trust remove 3f2a9c1d --reason "key leaked"
    """
    from registry.governance.revocation import remove_trusted

    report = remove_trusted(ctx.registry, key, reason)
    human = f"revoked key {report['key_id'][:16]} ({report['name']})"
    if report["demoted"]:
        human += "; back to draft: " + ", ".join(report["demoted"])
    emit(ctx, report, human)


COMMANDS = [trust]
