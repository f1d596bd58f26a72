"""`registry vector …`: import and inspect preference vectors."""

from __future__ import annotations

import click

from registry.cli.catalogue import filter_options
from registry.cli.common import emit, pass_ctx, say, table, warn
from registry.db import listings as catalog
from registry.training.progress import WorkProgress


@click.group("vector")
def vector_group() -> None:
    """Preference vectors φ = θ+ − θ−, versioned per name and base."""


@vector_group.command("import")
@click.argument("name")
@click.option("--base", "base", required=True, help="Registered base the vector belongs to.")
@click.option(
    "--positive",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="θ+ folder (safetensors).",
)
@click.option(
    "--negative",
    type=click.Path(exists=True, file_okay=False),
    help="θ− folder (default: the base itself).",
)
@click.option(
    "--require-lossless",
    is_flag=True,
    help="Refuse the import if θ+ − θ− is not exact in float32 for some tensor "
    "(by default it is stored and recorded as lossless: false in the lineage).",
)
@pass_ctx
def import_(ctx, name: str, base: str, positive: str, negative: str | None, require_lossless: bool) -> None:
    """Import φ = θ+ − θ− from fine-tunes made elsewhere.

    \b
    Example:
      registry vector import helpful --base tiny --positive ./dpo-plus --negative ./dpo-minus
    """
    from registry.db.as_json import vector_view

    progress: list[WorkProgress] = []  # made at the first tensor, when the count is known

    def on_tensor(total: int) -> None:
        if not progress:
            progress.append(WorkProgress(f"import {name}", total, "tensors"))
        progress[0].advance()

    try:
        v = ctx.registry.import_vector(
            name, base, positive, negative, require_lossless=require_lossless, on_tensor=on_tensor
        )
    except BaseException:
        for p in progress:
            p.close(completed=False)
        raise
    for p in progress:
        p.close()
    d = vector_view(v)
    lines = [
        f"imported {v.ref} for base {base}: {v.param_count:,} params, norm {v.norm:.4g}, {d['bytes_per_param']:.2f} stored bytes/param"
    ]
    lines += [f"  cosine with {o}: {i['global']:+.4f}" for o, i in v.interference.get("cosines", {}).items()]
    vector_warnings(ctx, v)
    emit(ctx, d, "\n".join(lines))


def vector_warnings(ctx, v) -> None:
    """The interference and plausibility warnings of a new vector, on stderr."""
    report = v.interference or {}
    for message in (report.get("warning"), (report.get("plausibility") or {}).get("warning")):
        if message:
            warn(ctx, message)


@vector_group.command("list")
@click.option("--base", help="Only vectors of this base.")
@filter_options
@pass_ctx
def list_(ctx, base: str | None, filter) -> None:
    """List vectors (live ones; --archived or --all shows archived ones).

    \b
    Example:
      registry vector list --status approved --tag team=safety --search helpful
    """
    plain = not (filter.status or filter.tags or filter.search or filter.archived != "hide")
    # the filter runs in SQL on the full path; a plain list (or one base) stays on the fast one
    rows = ctx.fast(lambda config: catalog.vector_rows(config, base)) if plain else None
    if rows is None:
        from registry.db.as_json import vector_view

        rows = [vector_view(v) for v in ctx.registry.vectors(filter=filter)]
    shown = [
        {**r, "norm": f"{r['norm']:.4g}", "tags": " ".join(f"{k}={v}" for k, v in r["tags"].items())}
        for r in rows
    ]  # JSON keeps the number and the mapping
    columns = ["ref", "base", "status", "norm", "param_count", "digest", "tags"]
    if filter.archived != "hide":
        columns.append("archived_at")
    emit(ctx, rows, table(shown, columns) if rows else "no vectors")


@vector_group.command("show")
@click.argument("ref")
@click.option("--base", help="Disambiguates a name used with several bases.")
@pass_ctx
def show(ctx, ref: str, base: str | None) -> None:
    """Show a vector (NAME or NAME@vN), its lineage and interference."""
    from registry.db.as_json import vector_view

    found = ctx.fast(lambda config: catalog.vector(config, ref, base))
    v = vector_view(found if found is not None else ctx.registry.vector(ref, base), detail=True)
    lines = [
        f"{k}: {v[k]}" for k in ("ref", "base", "status", "digest", "param_count", "norm", "stored_bytes")
    ]
    lines.append(f"form: low-rank, rank {v['rank']}" if v["rank"] is not None else "form: dense")
    lines += [f"description: {v['description']}"] if v["description"] else []
    lines += [f"tags: {' '.join(f'{k}={x}' for k, x in v['tags'].items())}"] if v["tags"] else []
    if v["archived_at"]:
        gone = f"; store data removed by gc {v['collected_at']}" if v["collected_at"] else ""
        lines.append(f"archived: {v['archived_at']} by {v['archived_by']}{gone}")
    lines.append(f"lineage: {run_line(v['lineage'])}")
    if v["created_by"]:
        lines.append(f"created by: {v['created_by']}")
    if v["status_actor"]:
        lines.append(f"{v['status']} by {v['status_actor']}: {v['status_reason']}")
    plausible = (v["interference"] or {}).get("plausibility")
    if plausible:
        lines.append(
            f"relative norm: {plausible['relative_norm']:.4g} of the base's (limit {plausible['limit']})"
        )
    for other, info in (v["interference"] or {}).get("cosines", {}).items():
        lines.append(f"cosine with {other}: {info['global']:+.4f}")
    emit(ctx, v, "\n".join(lines))


def run_line(run: dict | None) -> str:
    """`verbose run 3 (succeeded), plugin verbose 1.0, seed 0`; fields a run lacks are left out."""
    if not run or run.get("id") is None:
        return "no training or import run recorded"
    text = f"{run['kind']} run {run['id']} ({run['status']})"
    if run.get("plugin"):
        text += f", plugin {run['plugin']}" + (
            f" {run['plugin_version']}" if run.get("plugin_version") else ""
        )
    if run.get("seed") is not None:
        text += f", seed {run['seed']}"
    return text


@vector_group.command("compare")
@click.argument("a")
@click.argument("b")
@click.option("--base", help="Disambiguates names used with several bases.")
@pass_ctx
def compare(ctx, a: str, b: str, base: str | None) -> None:
    """Global and per-layer cosine of vectors A and B (e.g. two seeds of one preference)."""
    d = ctx.registry.compare(a, b, base)
    lines = [f"{d['a']} vs {d['b']}: cosine {d['global']:+.6f}"]
    lines += [f"  {k}: {c:+.6f}" for k, c in d["per_layer"].items()]
    emit(ctx, d, "\n".join(lines))


@vector_group.command("consistency")
@click.argument("name")
@click.option(
    "--seeds", default=3, show_default=True, help="Number of seeds (the vector's own is the first)."
)
@click.option("--base", help="Base of the vector (when the name exists on several).")
@pass_ctx
def consistency(ctx, name: str, seeds: int, base: str | None) -> None:
    """Retrain NAME's plugin with other seeds; pairwise cosines, global and per layer.

    \b
    Example:
      registry vector consistency verbose --seeds 3
    """
    res = ctx.registry.consistency(name, seeds, base, log=lambda m: say(ctx, m))
    rows = [
        {"a": p["a"], "b": p["b"], "global": f"{p['global']:+.4f}",
         **{k: f"{c:+.3f}" for k, c in p["per_layer"].items()}}
        for p in res["pairs"]
    ]  # fmt: skip
    layers = list(res["pairs"][0]["per_layer"])
    emit(ctx, res, table(rows, ["a", "b", "global", *layers]) + f"\nmean cosine {res['mean_global']:+.4f}")


COMMANDS = [vector_group]
