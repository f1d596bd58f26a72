"""`registry recipe …`: named, immutable, versioned merge recipes."""

from __future__ import annotations

import click

from registry.cli.catalogue import filter_options
from registry.cli.common import emit, pass_ctx, table
from registry.db import listings as catalog


@click.group("recipe")
def recipe_group() -> None:
    """Merge recipes: a base, a method and weighted vector terms."""


@recipe_group.command("add")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--allow-deprecated", is_flag=True, help="Accept deprecated vectors pinned explicitly as NAME@vN."
)
@pass_ctx
def add(ctx, file: str, allow_deprecated: bool) -> None:
    """Add a recipe version from a YAML FILE (identical content returns the existing version).

    \b
    Example recipe.yaml:
      name: helpful-safe
      base: tiny-llama
      method: linear
      terms:
        - {vector: helpful, weight: 1.0}
        - {vector: harmless@v2, weight: 0.5}
    """
    from registry.db.as_json import recipe_view

    r, created = ctx.registry.add_recipe(file, allow_deprecated)
    emit(
        ctx,
        {**recipe_view(r), "created": created},
        f"{'added' if created else 'unchanged, already'} {r.ref}",
    )


@recipe_group.command("list")
@click.option("--base", help="Only recipes of this base.")
@filter_options
@pass_ctx
def list_(ctx, base: str | None, filter) -> None:
    """List recipe versions and their aliases (live ones; --archived or --all shows archived ones).

    \b
    Example:
      registry recipe list --status approved --tag stage=canary
    """
    from registry.db.as_json import recipe_view

    if filter.narrows:  # the filter runs in SQL on the full path; a plain list stays fast
        reg = ctx.registry
        found = reg.recipes(filter), reg.aliases()
    else:
        found = ctx.fast(catalog.recipes)
    recipes, aliases = found if found is not None else (ctx.registry.recipes(), ctx.registry.aliases())
    rows = [recipe_view(r, aliases) for r in recipes]
    shown = [
        {
            **r,
            "aliases": ",".join(r["aliases"]),
            "status": r["status"]
            + (f" (uses deprecated {', '.join(r['deprecated_vectors'])})" if r["deprecated_vectors"] else ""),
            "terms": " ".join(f"{t['weight']:+g}·{t['vector']}" for t in r["terms"]),
            "tags": " ".join(f"{k}={v}" for k, v in r["tags"].items()),
        }
        for r in rows
    ]  # JSON keeps the lists
    columns = ["ref", "base", "method", "dtype", "status", "aliases", "terms", "tags"]
    if filter.archived != "hide":
        columns.append("archived_at")
    emit(ctx, rows, table(shown, columns) if rows else "no recipes")


@recipe_group.command("show")
@click.argument("ref")
@pass_ctx
def show(ctx, ref: str) -> None:
    """Show one recipe version (NAME, NAME@vN or NAME@ALIAS)."""
    import yaml

    from registry.db.as_json import recipe_view

    found = ctx.fast(lambda config: catalog.recipe(config, ref))
    if found is None:
        from registry.evaluation.results_log import recorded_notes

        reg = ctx.registry
        r = reg.recipe(ref)
        found = r, reg.aliases(r.name), recorded_notes(reg, r.ref)
    r, aliases, notes = found
    v = recipe_view(r, aliases, detail=True)
    v["notes"] = notes  # tune search, newest retention check
    shown = {k: x for k, x in v.items() if x is not None and k != "deprecated_vectors"}
    human = yaml.safe_dump(shown, sort_keys=False, allow_unicode=True).rstrip()
    if v["deprecated_vectors"]:
        human += f"\nwarning: uses deprecated vector(s) {', '.join(v['deprecated_vectors'])}"
    emit(ctx, v, human)


@recipe_group.command("alias")
@click.argument("ref")
@click.argument("alias")
@click.option("--force", is_flag=True, help="Allow a version that is not approved (policy admins only).")
@pass_ctx
def alias(ctx, ref: str, alias: str, force: bool) -> None:
    """Point ALIAS (e.g. prod) at recipe version REF (approved versions only unless --force)."""
    r = ctx.registry.set_alias(ref, alias, force=force)
    emit(ctx, {"alias": f"{r.name}@{alias}", "recipe": r.ref}, f"{r.name}@{alias} -> {r.ref}")


COMMANDS = [recipe_group]
