"""`registry add-preference PLUGIN`: train a new preference vector with a plugin.

Each installed plugin becomes a sub-command of `add-preference`, carrying its own options
next to the shared training options; plugins load only when their command is used.
"""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx, say
from registry.training.options import DATA_FORMATS, PRECISIONS, TrainingOptions

_D = TrainingOptions()  # one source for the defaults: the library's

TRAINING_OPTIONS = [
    click.Option(["--base"], required=True, help="Registered base to train from (its pins are re-checked)."),
    click.Option(["--name"], help="Vector name (default: the plugin's name)."),
    click.Option(["--seed"], type=int, default=0, show_default=True, help="Seed for θ+ and θ− alike."),
    click.Option(
        ["--epochs"], type=float, default=_D.epochs, show_default=True, help="Passes over the pairs."
    ),
    click.Option(["--steps"], type=int, help="Optimizer steps per half instead of --epochs."),
    click.Option(["--learning-rate"], type=float, default=_D.learning_rate, show_default=True),
    click.Option(["--beta"], type=float, default=_D.beta, show_default=True, help="DPO β."),
    click.Option(
        ["--max-length"],
        type=int,
        default=_D.max_length,
        show_default=True,
        help="Max tokens per prompt+answer.",
    ),
    click.Option(
        ["--batch-size"], type=int, default=_D.batch_size, show_default=True, help="Pairs per device."
    ),
    click.Option(
        ["--gradient-accumulation"],
        type=int,
        default=_D.gradient_accumulation,
        show_default=True,
        help="Batches per optimizer step.",
    ),
    click.Option(
        ["--warmup-ratio"],
        type=float,
        default=_D.warmup_ratio,
        show_default=True,
        help="Fraction of steps with a linear learning-rate warm-up (then linear decay).",
    ),
    click.Option(
        ["--lora-rank"],
        type=int,
        help="Train LoRA adapters of this rank (peft); φ is stored as their factors (rank 2R).",
    ),
    click.Option(
        ["--format", "data_format"],
        type=click.Choice(DATA_FORMATS),
        default=_D.data_format,
        show_default=True,
        help="Pairs as chat turns or plain text; auto: chat when the base has a chat template.",
    ),
    click.Option(
        ["--precision"],
        type=click.Choice(PRECISIONS),
        default=_D.precision,
        show_default=True,
        help="auto: bf16 mixed precision on GPUs, fp32 on the CPU (master weights are fp32 either way).",
    ),
    click.Option(
        ["--log-every"],
        type=click.IntRange(min=1),
        default=10,
        show_default=True,
        help="Off a terminal: a progress line (JSON with --json) every N steps.",
    ),
    click.Option(
        ["--interference"],
        type=click.Choice(["warn", "refuse", "off"]),
        help="Override the registry's policy.",
    ),
    click.Option(["--threshold"], type=float, help="Override the policy's |cosine| threshold."),
    click.Option(
        ["--work"],
        type=click.Path(file_okay=False),
        help="Keep each phase (generated pairs, θ+, θ−) here; a re-run with the same inputs skips what is done.",
    ),
]
SHARED = {o.name for o in TRAINING_OPTIONS}


class PluginCommands(click.Group):
    def list_commands(self, ctx):
        from registry.plugins.loader import names

        return names()

    def get_command(self, ctx, name):
        from registry.plugins.loader import load, names

        if name not in names():
            return None
        plugin = load(name)  # a broken plugin raises PluginError: a one-line message

        @pass_ctx
        def run(ctx_obj, **kw):
            _train(ctx_obj, name, kw)

        example = getattr(plugin, "example", None) or default_example(name, plugin.options)
        return click.Command(
            name,
            callback=run,
            params=[*TRAINING_OPTIONS, *plugin.options],
            help=f"{plugin.description}\n\n\b\nExample:\n  {example}",
            short_help=plugin.description,
        )


def default_example(name: str, options: list[click.Parameter]) -> str:
    """`registry add-preference NAME --base tiny --seed 0`, with every option the plugin requires."""

    def placeholder(o: click.Parameter) -> str:
        return o.metavar or ("FILE" if isinstance(o.type, click.Path) else str(o.name).upper())

    required = [f"{o.opts[0]} {placeholder(o)}" for o in options if o.required and o.opts]
    return " ".join([f"registry add-preference {name} --base tiny", *required, "--seed 0"])


def _train(ctx, plugin: str, kw: dict) -> None:
    from registry.config import InterferencePolicy
    from registry.db.as_json import vector_view
    from registry.training.add_preference import preflight
    from registry.training.options import is_main_process
    from registry.training.progress import reporting
    from registry.util.extras import require

    require("train", "torch", "transformers", "trl", "accelerate", what="add-preference")
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
        gradient_accumulation=kw["gradient_accumulation"],
        warmup_ratio=kw["warmup_ratio"],
        lora_rank=kw["lora_rank"],
        data_format=kw["data_format"],
        precision=kw["precision"],
    ).resolved(reg.base(kw["base"]).path)  # lineage records what was used, not "auto"
    plugin_options = {k: v for k, v in kw.items() if k not in SHARED}
    preflight(plugin, plugin_options)  # bad instructions or prompts: one line, before any output
    if is_main_process():
        say(ctx, options.describe())
    with reporting(json=ctx.as_json, every=kw["log_every"]):
        v = reg.add_preference(
            plugin,
            kw["base"],
            name=kw["name"],
            seed=kw["seed"],
            options=options,
            plugin_options=plugin_options,
            policy=policy,
            log=lambda m: say(ctx, m),
            work=kw["work"],
        )
    if v is None:  # a non-main process of a distributed launch: the main one reports
        return
    d = vector_view(v, detail=True)
    lines = [
        f"added {v.ref} for base {kw['base']} (run {v.run.id}, {d['lineage']['seconds']:.1f}s, norm {v.norm:.4g})"
    ]
    for other, info in v.interference.get("cosines", {}).items():
        lines.append(f"  cosine with {other}: {info['global']:+.4f}")
    from registry.cli.vector import vector_warnings

    vector_warnings(ctx, v)
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
