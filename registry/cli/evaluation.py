"""`registry evaluation list|show`: recorded behaviour evaluations (review evidence)."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx, table


@click.group("evaluation")
def evaluation_group() -> None:
    """Recorded evaluations of vectors and recipes (`registry sweep REF --record`)."""


def _summary(e) -> dict:
    return {
        "id": e.id,
        "kind": e.subject_kind,
        "ref": e.subject_ref,
        "digest": e.subject_digest[:12],
        "grid": " × ".join(f"{n}[{len(v)}]" for n, v in e.grid.items()),
        "metrics": ", ".join(e.metric_names),
        "by": e.created_by,
        "at": e.created_at.strftime("%Y-%m-%d %H:%M"),
    }


@evaluation_group.command("list")
@click.argument("ref", required=False)
@click.option(
    "--vector", "as_vector", is_flag=True, help="REF names a vector even if a recipe has that name."
)
@click.option("--base", help="The base of a vector REF that exists for several bases.")
@pass_ctx
def list_evaluations(ctx, ref, as_vector, base) -> None:
    """Evaluations of REF's exact digest (a recipe, else a vector), newest first; all without REF.

    \b
    Example:
      registry evaluation list verbose@v1
      registry --json evaluation list | jq '.[0].id'
    """
    found = ctx.registry.evaluations(ref, "vector" if as_vector else None, base)
    rows = [_summary(e) for e in found]
    cols = ["id", "kind", "ref", "digest", "grid", "metrics", "by", "at"]
    emit(ctx, [e.as_json() for e in found], table(rows, cols) if rows else "no recorded evaluations")


@evaluation_group.command("show")
@click.argument("what", metavar="REF|ID")
@click.option(
    "--vector", "as_vector", is_flag=True, help="REF names a vector even if a recipe has that name."
)
@click.option("--base", help="The base of a vector REF that exists for several bases.")
@pass_ctx
def show_evaluation(ctx, what, as_vector, base) -> None:
    """One evaluation: by id, or REF's newest: every metric at every η, and sample answers.

    \b
    Example:
      registry evaluation show 3
      registry evaluation show verbose@v1
    """
    from registry.errors import NotFound

    reg = ctx.registry
    if what.isdigit():
        e = reg.evaluation(int(what))
    else:
        found = reg.evaluations(what, "vector" if as_vector else None, base)
        if not found:
            raise NotFound("evaluation", what, f"record one: registry sweep {what} --record")
        e = found[0]
    emit(ctx, e.as_json(), render(e))


def render(e) -> str:
    head = [
        f"evaluation {e.id}: {e.subject_kind} {e.subject_ref} ({e.subject_digest[:12]}) on {e.base_name} "
        f"({e.base_digest[:12]})",
        f"by {e.created_by} at {e.created_at.strftime('%Y-%m-%d %H:%M:%S')} UTC in {e.seconds:.1f}s, seed {e.seed}",
        f"prompts: {e.prompts_source} ({e.prompts_digest[:12]})",
        "decoding: " + ", ".join(f"{k}={v}" for k, v in sorted(e.decoding.items())),
        "evaluators: " + ", ".join(f"{k} {v}" for k, v in sorted(e.evaluators.items())),
        "",
    ]
    varied = list(e.grid)
    rows = [
        {
            **{f"eta[{n}]": f"{p.etas[n]:+g}" for n in varied},
            **{m: "-" if p.metrics.get(m) is None else f"{p.metrics[m]:.4g}" for m in e.metric_names},
        }
        for p in e.points
    ]
    lines = [*head, table(rows, [*(f"eta[{n}]" for n in varied), *e.metric_names])]
    for p in e.points:
        if not p.samples:
            continue
        at = ", ".join(f"η[{n}]={p.etas[n]:+g}" for n in varied)
        lines += ["", f"answers at {at}:"]
        for s in p.samples:
            lines += [f"  Q: {' '.join(s['prompt'].split())}", f"  A: {' '.join(s['answer'].split())}"]
    return "\n".join(lines)


COMMANDS = [evaluation_group]
