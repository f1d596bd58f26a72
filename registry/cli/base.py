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
    """Register SOURCE (a local HF folder or a Hub repo id) as base NAME.

    \b
    Example:
      registry base add tiny-llama ./models/tiny-llama
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

    v = base_view(ctx.registry.base(name), files=True)
    lines = [f"{k}: {v[k]}" for k in v if k != "files"]
    lines += [f"  {f}  {i['sha256']}  {i['size']:,} B" for f, i in v["files"].items()]
    emit(ctx, v, "\n".join(lines))


COMMANDS = [base_group]
