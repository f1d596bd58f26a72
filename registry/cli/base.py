"""`registry base …`: register and inspect pinned base models."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx, table
from registry.db import listings as catalog


@click.group("base")
def base_group() -> None:
    """Base models, pinned by the sha256 of every file."""


@base_group.command("add")
@click.argument("name")
@click.argument("source")
@click.option("--revision", help="Hub revision (branch, tag or commit) when SOURCE is a repo id.")
@pass_ctx
def add(ctx, name: str, source: str, revision: str | None) -> None:
    """Register SOURCE (a local HF folder or a Hub repo id ORG/NAME) as base NAME.

    A Hub revision is recorded together with the commit it resolved to; a SOURCE that looks
    like a path is never sent to the Hub.

    \b
    Example:
      registry base add tiny-llama ./models/tiny-llama
      registry base add smol HuggingFaceTB/SmolLM2-135M --revision main
    """
    from registry.db.as_json import base_view

    b = ctx.registry.add_base(name, source, revision)
    emit(
        ctx,
        base_view(b),
        f"added base {b.name}: {b.architecture}, {b.param_count:,} params, {b.dtype}, {len(b.files)} files pinned",
    )


@base_group.command("list")
@pass_ctx
def list_(ctx) -> None:
    """List registered bases."""
    rows = ctx.fast(catalog.base_rows)
    if rows is None:
        from registry.db.as_json import base_view

        rows = [base_view(b) for b in ctx.registry.bases()]
    emit(
        ctx,
        rows,
        table(rows, ["name", "architecture", "dtype", "param_count", "source"]) if rows else "no bases",
    )


@base_group.command("show")
@click.argument("name")
@pass_ctx
def show(ctx, name: str) -> None:
    """Show one base and its pinned files."""
    from registry.db.as_json import base_view

    b = ctx.fast(lambda config: catalog.base(config, name))
    if b is None:
        b = ctx.registry.base(name)
        b.locations = ctx.registry.base_locations(name)
    v = base_view(b, files=True)
    v["recorded_path"] = b.recorded_path  # where it was added; `path` is this host's folder
    v["locations"] = b.locations
    lines = [f"{k}: {v[k]}" for k in v if k not in ("files", "locations") and v[k] is not None]
    lines += [f"located on {h}: {p}" for h, p in v["locations"].items()]
    lines += [f"  {f}  {i['sha256']}  {i['size']:,} B" for f, i in v["files"].items()]
    emit(ctx, v, "\n".join(lines))


@base_group.command("locate")
@click.argument("name")
@click.argument("path", type=click.Path())
@pass_ctx
def locate(ctx, name: str, path: str) -> None:
    """Record PATH as this host's copy of base NAME, after checking every pinned file there.

    Each host keeps its own folder (other hosts' are never changed); use it when a base was
    moved, or on a machine sharing the registry's database.

    \b
    Example:
      registry base locate tiny-llama /data/models/tiny-llama
    """
    out = ctx.registry.locate_base(name, path)
    emit(ctx, out, f"base {name} located at {out['path']} for host {out['host']} (every pin checked)")


@base_group.command("remove")
@click.argument("name")
@pass_ctx
def remove(ctx, name: str) -> None:
    """Remove base NAME (its pins and every host's location); refused while vectors or recipes use it.

    \b
    Example:
      registry base remove old-base
    """
    out = ctx.registry.remove_base(name)
    runs = f" and {len(out['runs_removed'])} training runs without vectors" if out["runs_removed"] else ""
    emit(ctx, out, f"removed base {name}{runs}")


COMMANDS = [base_group]
