"""`registry sweep`: score merged models over a grid of η, in memory."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx, say, table
from registry.training.progress import quiet_third_party, settings


@click.command("sweep")
@click.argument("recipe")
@click.option(
    "--vary",
    multiple=True,
    required=True,
    help="A term of the recipe whose weight η is varied (once or twice); the others stay fixed.",
)
@click.option("--etas", default="-1,-0.5,0,0.5,1", show_default=True, help="Comma-separated finite η values.")
@click.option(
    "--evaluator",
    multiple=True,
    help="Also score with an installed evaluator (answer_length, distinct_words, mattr, repeated_4grams, "
    "long_words, words_per_sentence, ppl_drift) or a plugin's held-out DPO margin (PLUGIN or PLUGIN_margin).",
)
@click.option(
    "--out", type=click.Path(file_okay=False), help="Folder for sweep.csv/json/png (default: sweep-RECIPE)."
)
@pass_ctx
def sweep(ctx, recipe, vary, etas, evaluator, out) -> None:
    """Score merged models over a grid of η, in memory (no folders written).

    Each vector's training plugin scores its held-out DPO margin. Evaluators such as
    answer_length read greedy answers to held-out prompts, through the chat template on a
    chat base (at most 256 new tokens; REGISTRY_EVAL_MAX_NEW_TOKENS changes it).

    \b
    Example:
      registry sweep verbose-helpful --vary verbose --etas -1,-0.5,0,0.5,1
      registry sweep verbose-helpful --vary verbose --evaluator answer_length --evaluator mattr
      registry sweep verbose-helpful --vary verbose --vary helpful --etas -1,0,1
    """
    from pathlib import Path

    from registry.evaluation.sweep import run_sweep

    try:
        values = [float(x) for x in etas.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of numbers: {etas!r}", param_hint="--etas") from None
    if not values or len(vary) > 2:
        raise click.UsageError("give at least one η and at most two --vary vectors")
    with quiet_third_party(settings().interactive()):  # no "Loading weights" bar in logs
        result = run_sweep(
            ctx.registry, recipe, list(vary), values, list(evaluator), log=lambda m: say(ctx, m)
        )
    files = result.write(Path(out or f"sweep-{recipe.replace('@', '-')}"))
    rows = [{k: f"{v:+.4g}" for k, v in r.items()} for r in result.rows]
    cols = [*(f"eta[{v}]" for v in result.varied), *result.metrics]
    fixed = ", ".join(f"{n}={w:g}" for n, w in result.fixed.items())
    emit(
        ctx,
        {**result.as_dict(), "files": files},
        table(rows, cols)
        + (f"\nfixed at their recipe weights: {fixed}" if fixed else "")
        + f"\nwritten: {', '.join(files.values())}",
    )


COMMANDS = [sweep]
