"""`registry interference`: the cosine (Gram) matrix of a base's vectors."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx, table


@click.command("interference")
@click.option("--base", help="Base whose vectors to compare (default: the only one).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write a heatmap PNG of the cosine matrix.")
@pass_ctx
def interference(ctx, base: str | None, plot: str | None) -> None:
    """Cosine similarity (Gram matrix) of all vectors of a base, in one streaming pass.

    \b
    Example:
      registry interference --base tiny --plot interference.png
    """
    vecs, g = ctx.registry.interference(base)
    labels = [v.ref for v in vecs]
    cos = g.cosine()
    if plot:
        from registry.plots import heatmap

        heatmap(cos, labels, plot, title=f"cosine similarity of preference vectors ({vecs[0].base.name})")
    data = {"base": vecs[0].base.name, "vectors": labels, "cosine": cos.round(6).tolist(), "plot": plot}
    rows = [
        {"vector": a, **{b: f"{cos[i, j]:+.4f}" for j, b in enumerate(labels)}} for i, a in enumerate(labels)
    ]
    emit(ctx, data, table(rows, ["vector", *labels]) + (f"\nheatmap written to {plot}" if plot else ""))


COMMANDS = [interference]
