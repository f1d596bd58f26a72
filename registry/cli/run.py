"""`registry run pairs RUN`: the preference pairs a training run's base generated."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx


@click.group("run")
def run_group() -> None:
    """Training runs."""


@run_group.command("pairs")
@click.argument("run_id", metavar="RUN", type=click.IntRange(min=1, max=2**63 - 1))
@click.option(
    "--kept-only", is_flag=True, help="Leave out the pairs dropped because the contrast did not hold."
)
@pass_ctx
def run_pairs(ctx, run_id: int, kept_only: bool) -> None:
    """Show the pairs a run generated and kept (and those it dropped, with why).

    \b
    Example:
      registry run pairs 3 --kept-only
      registry --json run pairs 3 | jq '.pairs[0]'
    """
    doc = ctx.registry.run_pairs(run_id, dropped=not kept_only)
    c = doc["counts"]
    lines = [
        f"run {run_id}: {c.get('kept', 0)} of {c.get('generated', 0)} generated pairs kept"
        + "".join(f", {n} dropped ({why})" for why, n in (c.get("dropped") or {}).items())
        + f"; pairs digest {doc['pairs_digest'][:12]}"
    ]
    for p in doc["pairs"]:
        mark = "kept" if p["kept"] else f"dropped: {p['dropped_because']}"
        lines += [
            "",
            f"#{p['position']} [{mark}] (instructions {p['contrast']})",
            f"  prompt:   {p['prompt']}",
            f"  chosen:   {' '.join(p['chosen'].split())}",
            f"  rejected: {' '.join(p['rejected'].split())}",
        ]
    emit(ctx, doc, "\n".join(lines))


COMMANDS = [run_group]
