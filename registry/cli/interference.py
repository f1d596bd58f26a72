"""`registry interference`: the cosine (Gram) matrix of a base's vectors."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx, table


@click.command("interference")
@click.option("--base", help="Base whose vectors to compare (default: the only one).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a heatmap PNG of the cosine matrix.")
@click.option("--recipe", help="Only the terms of this recipe, in its order (for `orthogonal` removal).")
@pass_ctx
def interference(ctx, base: str | None, plot: str | None, recipe: str | None) -> None:
    """Cosine similarity (Gram matrix) of all vectors of a base, in one streaming pass.

    The `removed` column is the share of each vector's norm that `orthogonal` merging
    removes (its projection onto the vectors listed before it, per tensor).

    \b
    Example:
      registry interference --base tiny --plot interference.png
    """
    from registry.merging.gram import orthogonal_removed

    vecs, g = ctx.registry.recipe_interference(recipe) if recipe else ctx.registry.interference(base)
    labels = [v.ref for v in vecs]
    cos = g.cosine()
    removed = orthogonal_removed(g)
    if plot:
        from registry.evaluation.plots import heatmap

        heatmap(cos, labels, plot, title=f"cosine similarity of preference vectors ({vecs[0].base.name})")
    data = {"base": vecs[0].base.name, "vectors": labels, "cosine": cos.round(6).tolist(), "plot": plot}
    data["orthogonal_removed"] = removed
    rows = [
        {
            "vector": a,
            **{b: f"{cos[i, j]:+.4f}" for j, b in enumerate(labels)},
            "removed": f"{removed[a]:.1%}",
        }
        for i, a in enumerate(labels)
    ]
    emit(
        ctx,
        data,
        table(rows, ["vector", *labels, "removed"]) + (f"\nheatmap written to {plot}" if plot else ""),
    )


COMMANDS = [interference]
