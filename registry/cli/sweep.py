"""`registry sweep`: score merged models over a grid of η, in memory; `--record` keeps it as evidence."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx, say, table
from registry.training.progress import quiet_third_party, settings


@click.command("sweep")
@click.argument("ref", metavar="REF")
@click.option(
    "--vary",
    multiple=True,
    help="A term whose weight η is varied (once or twice); the others stay fixed. A recipe needs it; "
    "for a vector it is the vector itself (θbase + η·φ), and a second --vary adds another vector.",
)
@click.option("--etas", default="-1,-0.5,0,0.5,1", show_default=True, help="Comma-separated finite η values.")
@click.option(
    "--evaluator",
    multiple=True,
    help="Also score with an installed evaluator (answer_length, distinct_words, mattr, repeated_4grams, "
    "long_words, words_per_sentence, ppl_drift) or a plugin's held-out DPO margin (PLUGIN or PLUGIN_margin).",
)
@click.option("--record", is_flag=True, help="Record the evaluation in the registry (review evidence).")
@click.option(
    "--prompts",
    "n_prompts",
    type=click.IntRange(min=1),
    help="Answer only the first N held-out prompts (with --record or a vector; default: all).",
)
@click.option(
    "--samples",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Answers kept per grid point in a recorded evaluation (the same prompts at every point).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of a recorded evaluation.")
@click.option("--base", help="The base of a vector REF that exists for several bases.")
@click.option(
    "--vector", "as_vector", is_flag=True, help="REF names a vector even if a recipe has that name."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder for sweep.csv/json/png (default: sweep-REF; a recorded or vector sweep writes none unless given).",
)
@pass_ctx
def sweep(ctx, ref, vary, etas, evaluator, record, n_prompts, samples, seed, base, as_vector, out) -> None:
    """Score merged models over a grid of η, in memory (no model folders written).

    REF is a recipe (vary one or two of its terms) or a vector alone (θbase + η·φ).
    Each vector's training plugin scores its held-out DPO margin. Evaluators such as
    answer_length read greedy answers to held-out prompts, through the chat template on a
    chat base (at most 256 new tokens; REGISTRY_EVAL_MAX_NEW_TOKENS changes it). With
    --record (or for a vector) answer length, MATTR, repeated 4-grams and perplexity drift
    are always measured, a few answers per point are kept, and --record stores the result
    as an evaluation of REF's exact digest (`registry evaluation show`).

    \b
    Example:
      registry sweep verbose-helpful --vary verbose --etas -1,-0.5,0,0.5,1
      registry sweep verbose --record --prompts 20 --samples 3
      registry sweep verbose --record --vary eli5
      registry sweep verbose-helpful --vary verbose --vary helpful --etas -1,0,1 --record
    """
    from pathlib import Path

    try:
        values = [float(x) for x in etas.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of numbers: {etas!r}", param_hint="--etas") from None
    if not values or len(vary) > 2:
        raise click.UsageError("give at least one η and at most two --vary terms")
    reg = ctx.registry
    kind = "vector" if as_vector else None
    legacy = not record and not as_vector and not n_prompts and _is_recipe(reg, ref)
    if legacy and not vary:
        raise click.UsageError("a recipe sweep needs --vary TERM (once or twice)")
    with quiet_third_party(settings().interactive()):  # no "Loading weights" bar in logs
        if legacy:
            result = reg.sweep(ref, list(vary), values, list(evaluator), log=lambda m: say(ctx, m))
        else:
            got = reg.record_sweep(
                ref, list(vary), values, list(evaluator), n_prompts, samples, seed, kind, base,
                log=lambda m: say(ctx, m), record=record,
            )  # fmt: skip
            result = _as_sweep(got if not record else got.as_json())
    # a plain recipe sweep writes its files as before; a recorded or vector one only into --out
    files = result.write(Path(out or f"sweep-{ref.replace('@', '-')}")) if legacy or out else {}
    rows = [{k: "-" if v is None else f"{v:+.4g}" for k, v in r.items()} for r in result.rows]
    cols = [*(f"eta[{v}]" for v in result.varied), *result.metrics]
    fixed = ", ".join(f"{n}={w:g}" for n, w in result.fixed.items())
    data = {**result.as_dict(), "files": files}
    text = table(rows, cols) + (f"\nfixed at their recipe weights: {fixed}" if fixed else "")
    if files:
        text += f"\nwritten: {', '.join(files.values())}"
    if record:
        data["evaluation"] = got.as_json()
        text += f"\nrecorded evaluation {got.id} of {got.subject_kind} {got.subject_ref} ({got.subject_digest[:12]})"
    emit(ctx, data, text)


def _is_recipe(reg, ref: str) -> bool:
    from registry.errors import NotFound

    try:
        reg.recipe(ref)
    except NotFound:
        return False
    return True


def _as_sweep(fields: dict):
    """A recorded (or unrecorded) evaluation as the sweep table and files."""
    from registry.evaluation.sweep import SweepResult

    points = [p if isinstance(p, dict) else p.as_json() for p in fields["points"]]
    varied = list(fields["grid"])
    metrics = sorted(points[0]["metrics"])
    rows = [{**{f"eta[{v}]": p["etas"][v] for v in varied}, **p["metrics"]} for p in points]
    return SweepResult(
        fields["subject_ref"],
        varied,
        metrics,
        rows,
        fixed=dict(fields["details"].get("fixed", {})),
        own_scale=[m for m in metrics if not m.endswith("_margin")],
    )


COMMANDS = [sweep]
