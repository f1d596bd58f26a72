"""`registry add-preference PLUGIN`: train a new preference vector with a plugin.

Each installed plugin becomes a sub-command of `add-preference`, carrying its own options
next to the shared training options; plugins load only when their command is used.
"""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx

TRAINING_OPTIONS = [
    click.Option(["--base"], required=True, help="Registered base to train from (its pins are re-checked)."),
    click.Option(["--name"], help="Vector name (default: the plugin's name)."),
    click.Option(["--seed"], type=int, default=0, show_default=True, help="Seed for θ+ and θ− alike."),
    click.Option(["--steps"], type=int, default=20, show_default=True, help="Optimizer steps per half."),
    click.Option(["--epochs"], type=float, help="Train for epochs instead of --steps."),
    click.Option(["--learning-rate"], type=float, default=1e-3, show_default=True),
    click.Option(["--beta"], type=float, default=0.1, show_default=True, help="DPO β."),
    click.Option(
        ["--max-length"], type=int, default=256, show_default=True, help="Max tokens per prompt+answer."
    ),
    click.Option(["--batch-size"], type=int, default=4, show_default=True),
    click.Option(["--lora-rank"], type=int, help="Train LoRA adapters of this rank (peft), merged into θ±."),
    click.Option(
        ["--interference"],
        type=click.Choice(["warn", "refuse", "off"]),
        help="Override the registry's policy.",
    ),
    click.Option(["--threshold"], type=float, help="Override the policy's |cosine| threshold."),
]
SHARED = {o.name for o in TRAINING_OPTIONS}


class PluginCommands(click.Group):
    def list_commands(self, ctx):
        from registry.plugins import names

        return names()

    def get_command(self, ctx, name):
        from registry.plugins import load, names

        if name not in names():
            return None
        plugin = load(name)  # a broken plugin raises PluginError: a one-line message

        @pass_ctx
        def run(ctx_obj, **kw):
            _train(ctx_obj, name, kw)

        return click.Command(
            name,
            callback=run,
            params=[*TRAINING_OPTIONS, *plugin.options],
            help=f"{plugin.description}\n\n\b\nExample:\n  registry add-preference {name} --base tiny --seed 0",
            short_help=plugin.description,
        )


def _train(ctx, plugin: str, kw: dict) -> None:
    from registry.config import InterferencePolicy
    from registry.training import TrainingOptions
    from registry.views import vector_view

    reg = ctx.registry
    policy = None
    if kw["interference"] or kw["threshold"] is not None:
        base_policy = reg.config.interference
        policy = InterferencePolicy(
            kw["interference"] or base_policy.action,
            kw["threshold"] if kw["threshold"] is not None else base_policy.threshold,
        )
    options = TrainingOptions(
        steps=kw["steps"],
        epochs=kw["epochs"],
        learning_rate=kw["learning_rate"],
        beta=kw["beta"],
        max_length=kw["max_length"],
        batch_size=kw["batch_size"],
        lora_rank=kw["lora_rank"],
    )
    plugin_options = {k: v for k, v in kw.items() if k not in SHARED}
    v = reg.add_preference(
        plugin,
        kw["base"],
        name=kw["name"],
        seed=kw["seed"],
        options=options,
        plugin_options=plugin_options,
        policy=policy,
        log=lambda m: click.echo(m, err=True),
    )
    if v is None:  # a non-main process of a distributed launch: the main one reports
        return
    d = vector_view(v, detail=True)
    lines = [
        f"added {v.ref} for base {kw['base']} (run {v.run.id}, {d['lineage']['seconds']:.1f}s, norm {v.norm:.4g})"
    ]
    for other, info in v.interference.get("cosines", {}).items():
        lines.append(f"  cosine with {other}: {info['global']:+.4f}")
    from registry.cli.vector import warn

    warn(v)
    emit(ctx, d, "\n".join(lines))


@click.group("add-preference", cls=PluginCommands)
def add_preference() -> None:
    """Train a new preference vector with a plugin: θ+ by DPO, θ− with labels switched.

    \b
    Example:
      registry add-preference verbose --base tiny --seed 0
      registry add-preference helpful --base tiny --data pku.jsonl
    """


COMMANDS = [add_preference]
