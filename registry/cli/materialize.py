"""`registry materialize`: write a recipe version as a Hugging Face folder."""

from __future__ import annotations

import contextlib

import click

from registry.cli.common import emit, pass_ctx, warn
from registry.training.progress import quiet_third_party, settings, work_progress


@click.command("materialize")
@click.argument("ref")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder (must be absent or empty).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace an earlier output of this registry (one with its registry-lock.json).",
)
@click.option("--shard-size", default="2GB", show_default=True, help="Maximum safetensors shard size.")
@click.option(
    "--require-approved", is_flag=True, help="Refuse a recipe version that is not approved (pipelines)."
)
@click.option("--no-reuse", is_flag=True, help="Recompute even if an identical verified output exists.")
@click.option(
    "--max-ppl-drift",
    metavar="PCT",
    help="Retention gate: refuse if perplexity on the retention corpus rises more than PCT (e.g. 5%).",
)
@click.option(
    "--sign-key",
    type=click.Path(exists=True, dir_okay=False),
    help="Sign the output with this elliptic-curve private key; writes OUT.sig beside the folder.",
)
@click.option(
    "--as-adapter",
    is_flag=True,
    help="Write a PEFT LoRA adapter (Σ η·φ over the base) instead of a full model; linear recipes only.",
)
@click.option(
    "--rank",
    type=click.IntRange(min=1),
    help="With --as-adapter: rank of the truncated SVD of dense terms (low-rank terms are exact).",
)
@click.option(
    "--max-error",
    type=click.FloatRange(min=0.0, max=1.0, max_open=True),
    help="With --as-adapter: refuse (nothing written) when the adapter's relative error exceeds this, e.g. 0.05.",
)
@pass_ctx
def materialize(
    ctx,
    ref: str,
    out: str,
    force: bool,
    shard_size: str,
    require_approved: bool,
    no_reuse: bool,
    max_ppl_drift: str | None,
    sign_key: str | None,
    as_adapter: bool,
    rank: int | None,
    max_error: float | None,
) -> None:
    """Write recipe REF (NAME, NAME@vN or NAME@ALIAS) as a Hugging Face folder.

    \b
    Example:
      registry materialize helpful-safe@prod --out ./models/helpful-safe
    """
    from registry.db.as_json import materialization_view
    from registry.evaluation.retention import parse_drift

    reg = ctx.registry
    if as_adapter:
        if max_ppl_drift is not None:
            raise click.UsageError("--max-ppl-drift measures a full model; it does not apply to --as-adapter")
        return _adapter(ctx, ref, out, rank, force, require_approved, sign_key, max_error)
    if rank is not None or max_error is not None:
        raise click.UsageError(
            f"--{'rank' if rank is not None else 'max-error'} applies only with --as-adapter"
        )
    r = reg.recipe(ref)
    gate = parse_drift(max_ppl_drift) if max_ppl_drift is not None else None
    with contextlib.ExitStack() as stack:
        if gate is not None:  # the retention check loads the model: no "Loading weights" bar in logs
            stack.enter_context(quiet_third_party(settings().interactive()))
        progress = stack.enter_context(work_progress(f"materialize {r.ref}", _out_bytes(r), "bytes"))
        m = reg.materialize(
            ref,
            out,
            force=force,
            on_bytes=progress.advance,
            shard_bytes=parse_size(shard_size),
            require_approved=require_approved,
            reuse=not no_reuse,
            max_ppl_drift=gate,
            sign_key=sign_key,
            on_warning=lambda message: warn(ctx, message),
        )
    if m.rounding_warning:  # after the progress bar is gone: one line of its own
        warn(ctx, m.rounding_warning)
    view = {
        **materialization_view(m),
        "rounded_away_fraction": m.rounded_away_fraction,
        "changed_fraction": m.changed_fraction,
    }
    if gate is not None:
        import json
        from pathlib import Path

        view["retention"] = json.loads((Path(m.out_path) / "registry-lock.json").read_text())["notes"][
            "retention"
        ]
    if m.reused_from_id:
        human = f"reused verified output of {m.recipe.ref} -> {m.out_path} (digest {m.output_digest[:16]}, nothing recomputed)"
    else:
        human = (
            f"materialized {m.recipe.ref} -> {m.out_path} (digest {m.output_digest[:16]}, {m.seconds:.2f}s)"
        )
    if gate is not None:
        human += f"; perplexity drift {view['retention']['drift']:+.2%} (limit {gate:.2%})"
    emit(ctx, view, human)


def _adapter(ctx, ref, out, rank, force, require_approved, sign_key, max_error) -> None:
    from registry.db.as_json import materialization_view
    from registry.release.adapter import WARN_ERROR, adapter_report

    m = ctx.registry.materialize_adapter(ref, out, rank, force, require_approved, sign_key, max_error)
    view = {**materialization_view(m), "adapter": adapter_report(m)}
    a = view["adapter"]
    human = (
        f"adapter of {m.recipe.ref} -> {m.out_path} (digest {m.output_digest[:16]}, {a['modules']} modules"
    )
    if a["exact"]:
        human += ", exact)"
    else:
        human += f", relative error {a['relative_error']:.4g} at SVD rank {a['svd_rank']})"
    if a["omitted"]:
        human += f"; not representable as LoRA, left out: {', '.join(a['omitted'][:3])}"
        human += f" and {len(a['omitted']) - 3} more" if len(a["omitted"]) > 3 else ""
    if max_error is None and a["relative_error"] > WARN_ERROR:
        warn(
            ctx,
            f"the adapter is far from the recipe: relative error {a['relative_error']:.4g} > {WARN_ERROR:g}"
            + (f" at SVD rank {a['svd_rank']}; raise --rank" if a["svd_rank"] else "")
            + ", or pass --max-error to refuse such an adapter",
        )
    emit(ctx, view, human)


def _out_bytes(r) -> int:
    width = {"bfloat16": 2, "float16": 2, "float32": 4}[r.dtype]
    return r.base.param_count * width


def parse_size(text: str) -> int:
    units = {
        "": 1,
        "B": 1,
        "KB": 10**3,
        "MB": 10**6,
        "GB": 10**9,
        "KIB": 2**10,
        "MIB": 2**20,
        "GIB": 2**30,
    }
    t = text.strip().upper()
    num = t.rstrip("KMGIB")
    try:
        value = float(num) * units[t[len(num) :]]
    except (ValueError, KeyError):
        raise click.BadParameter(f"not a size: {text!r} (e.g. 500MB, 2GB)") from None
    if value < 1:
        raise click.BadParameter("shard size must be positive")
    return int(value)


COMMANDS = [materialize]
