"""`registry tune`: find the η of one term that brings a held-out metric to a target."""

from __future__ import annotations

import json

import click

from registry.cli.common import emit, pass_ctx, say
from registry.training.progress import quiet_third_party, settings


@click.command("tune")
@click.argument("recipe")
@click.option(
    "--target", required=True, metavar="METRIC=VALUE", help="e.g. verbose_margin=5 or answer_length=20."
)
@click.option("--vary", help="The term whose η is searched (default: the only term).")
@click.option("--range", "range_", default="0:2", show_default=True, metavar="LO:HI", help="η bracket.")
@click.option("--max-evals", default=12, show_default=True, help="Merged models evaluated at most.")
@click.option("--tol", type=float, help="Accepted |metric − target| (default: 0.5% of the range's span).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Write the search curve as a PNG.")
@pass_ctx
def tune(ctx, recipe, target, vary, range_, max_evals, tol, plot) -> None:
    """Search η for one term of RECIPE (others fixed) and add the result as a new version.

    Metrics: PLUGIN_margin (a plugin's held-out DPO margin vs the base) or an evaluator
    from the `registry.evaluators` entry points (e.g. answer_length).

    \b
    Example:
      registry tune helpful-safe --target verbose_margin=5 --vary verbose --range 0:2
    """
    from registry.evaluation.tune import parse_range, parse_target
    from registry.util.extras import require

    require("train", "torch", "transformers", what="tune")  # before any progress line
    if plot:  # before the search, not after it
        require("plots", "matplotlib", what="tune --plot")
    metric, value = parse_target(target)
    lo, hi = parse_range(range_)

    def on_eval(e: dict) -> None:
        if ctx.as_json:
            click.echo(json.dumps({"event": "tune_eval", "recipe": recipe, "metric": metric, **e}), err=True)
        else:
            say(
                ctx,
                f"tune {recipe}: evaluation {e['n']}/{e['max_evals']}: η = {e['eta']:g} gives {metric} = {e['value']:.4g}",
            )

    say(ctx, f"tune {recipe}: loading the base and scoring {metric} (target {value:g})")
    with quiet_third_party(settings().interactive()):  # no "Loading weights" bar in logs
        res = ctx.registry.tune(
            recipe, metric, value, vary=vary, lo=lo, hi=hi, tol=tol, max_evals=max_evals, on_eval=on_eval
        )
    if plot:
        from registry.evaluation.plots import tune_plot

        tune_plot(res, plot)
    human = (
        f"{'added' if res['created'] else 'unchanged, already'} {res['recipe']}: η[{res['vary']}] = {res['eta']:g} "
        f"gives {metric} = {res['value']:.4g} (target {value:g}, {len(res['evaluations'])} evaluations)"
    )
    emit(ctx, {**res, "plot": plot}, human + (f"\nplot written to {plot}" if plot else ""))


COMMANDS = [tune]
