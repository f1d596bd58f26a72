"""Governance: approve, deprecate, log, gc, sweep."""

from __future__ import annotations

import functools

import click

from registry.cli.common import emit, pass_ctx, table


def lifecycle_command(name: str, status: str, why: str):
    """approve and deprecate share their arguments; only the target status differs."""

    def wrap(f):
        @click.command(name)
        @click.argument("ref")
        @click.option("--reason", required=True, help=f"{why} (recorded in the audit log).")
        @click.option("--actor", help="Who decides (default: $REGISTRY_ACTOR, else the OS user).")
        @click.option(
            "--vector",
            "kind",
            flag_value="vector",
            default="recipe",
            help="REF names a vector version, not a recipe.",
        )
        @click.option("--base", help="With --vector: disambiguates the vector's base.")
        @pass_ctx
        @functools.wraps(f)
        def command(ctx, ref, reason, actor, kind, base) -> None:
            reg = ctx.registry
            if actor:
                reg.actor = actor
            obj = reg.set_status(ref, status, reason, kind, base)
            data = {"ref": obj.ref, "kind": kind, "status": obj.status, "reason": reason, "actor": reg.actor}
            emit(ctx, data, f"{obj.ref} is now {obj.status} ({reg.actor}: {reason})")

        return command

    return wrap


@lifecycle_command("approve", "approved", "Why this version may ship")
def approve() -> None:
    """Approve a recipe version (or with --vector, a vector version).

    \b
    Example:
      registry approve helpful-safe@v2 --reason "eval 2024-06 passed"
    """


@lifecycle_command("deprecate", "deprecated", "Why this version must no longer ship")
def deprecate() -> None:
    """Deprecate a recipe version (or with --vector, a vector version)."""


@click.command("log")
@click.option("--object", "obj", help="Only events about this object (NAME matches NAME@… too).")
@click.option("--limit", type=int, help="Only the last N events.")
@pass_ctx
def log(ctx, obj, limit) -> None:
    """The audit log: every write, with actor, time, object and details."""
    from registry.views import event_view

    rows = [event_view(e) for e in ctx.registry.log(obj, limit)]
    shown = [{**r, "details": _short(r["details"])} for r in rows]
    emit(ctx, rows, table(shown, ["at", "actor", "action", "object", "details"]) if rows else "no events")


def _short(details: dict) -> str:
    keep = {
        k: v
        for k, v in details.items()
        if k in {"reason", "to", "from", "out", "digest", "reused_from", "forced"}
    }
    return ", ".join(f"{k}={v}" for k, v in keep.items() if v not in (None, False))


@click.command("gc")
@click.option(
    "--grace",
    type=float,
    default=3600,
    show_default=True,
    help="Keep data younger than this many seconds (writes in progress).",
)
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@pass_ctx
def gc(ctx, grace, dry_run) -> None:
    """Remove store data no committed row references (left by crashes)."""
    report = ctx.registry.gc(grace, dry_run)
    verb = "would free" if dry_run else "freed"
    human = f"{verb} {report['freed_bytes']:,} bytes: {len(report['removed'])} store group(s), {len(report['scratch'])} scratch folder(s); {len(report['interrupted_runs'])} interrupted run(s) marked failed"
    emit(ctx, report, "\n".join([human, *(f"  {k}" for k in report["removed"])]))


@click.command("sweep")
@click.argument("recipe")
@click.option("--vary", multiple=True, required=True, help="Vector whose weight η is varied (once or twice).")
@click.option("--etas", default="-1,-0.5,0,0.5,1", show_default=True, help="Comma-separated η values.")
@click.option("--evaluator", multiple=True, help="Extra plugin whose held-out pairs score each model.")
@click.option(
    "--out", type=click.Path(file_okay=False), help="Folder for sweep.csv/json/png (default: sweep-RECIPE)."
)
@pass_ctx
def sweep(ctx, recipe, vary, etas, evaluator, out) -> None:
    """Score merged models over a grid of η, in memory (no folders written).

    \b
    Example:
      registry sweep verbose-helpful --vary verbose --etas -1,-0.5,0,0.5,1
      registry sweep verbose-helpful --vary verbose --vary helpful --etas -1,0,1
    """
    from pathlib import Path

    from registry.sweep import run_sweep

    try:
        values = [float(x) for x in etas.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of numbers: {etas!r}", param_hint="--etas") from None
    if not values or len(vary) > 2:
        raise click.UsageError("give at least one η and at most two --vary vectors")
    result = run_sweep(
        ctx.registry, recipe, list(vary), values, list(evaluator), log=lambda m: click.echo(m, err=True)
    )
    files = result.write(Path(out or f"sweep-{recipe.replace('@', '-')}"))
    rows = [{k: f"{v:+.4g}" for k, v in r.items()} for r in result.rows]
    cols = [*(f"eta[{v}]" for v in result.varied), *result.metrics]
    emit(
        ctx,
        {**result.as_dict(), "files": files},
        table(rows, cols) + f"\nwritten: {', '.join(files.values())}",
    )


COMMANDS = [approve, deprecate, log, gc, sweep]
