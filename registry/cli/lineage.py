"""`registry lineage`: where a recipe, vector or materialized folder comes from, as a tree."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx


def render(tree: dict) -> str:
    from io import StringIO

    from rich.console import Console
    from rich.tree import Tree

    b = tree["base"]
    root = Tree(f"base {b['name']}  {b['digest'][:12]}  ({b['source']})")
    shown: dict[str, str] = {}  # recipe ref -> the vector it is drawn under
    for run in tree["runs"]:
        opts = {k: v for k, v in (run.get("params") or {}).items() if v is not None}
        what = f"{run.get('plugin')} {run.get('plugin_version')}" if run.get("plugin") else run["kind"]
        libs = " ".join(f"{k} {v}" for k, v in sorted((run.get("library_versions") or {}).items()))
        seed = f", seed {run['seed']}" if run.get("seed") is not None else ""
        rn = root.add(f"run {run['id']}: {what}{seed}, {run.get('status')}")
        if run.get("dataset_digest"):
            rn.add(f"data {run['dataset_digest'][:12]} ({run.get('dataset_size')} pairs)")
        if opts:
            rn.add("options " + ", ".join(f"{k}={_short(v)}" for k, v in sorted(opts.items())))
        if libs:
            rn.add(f"libraries {libs}")
        for role, src in sorted((run.get("sources") or {}).items()):
            rn.add(_source(role, src))
        for v in run["vectors"]:
            vn = rn.add(f"vector {v['ref']}  {v['digest'][:12]}  {v['status']}")
            for a in v["approvals"]:
                vn.add(_decision(a))
            for e in v.get("evaluations", []):
                vn.add(_evaluation(e))
            for r in v["recipes"]:
                terms = " ".join(f"{t['weight']:+g}·{t['vector']}" for t in r["terms"])
                if r["ref"] in shown:  # a recipe of several vectors: its subtree once, then a reference
                    vn.add(f"recipe {r['ref']} (see under {shown[r['ref']]})")
                    continue
                shown[r["ref"]] = f"vector {v['ref']}"
                cn = vn.add(f"recipe {r['ref']} ({r['method']}: {terms})  {r['status']}")
                for a in r["aliases"]:
                    cn.add(f"alias {a}")
                for a in r["approvals"]:
                    cn.add(_decision(a))
                for e in r.get("evaluations", []):
                    cn.add(_evaluation(e))
                for m in r["materializations"]:
                    what = "LoRA adapter" if m.get("adapter") else "materialized"
                    cn.add(f"{what} {m['out_path']}  {m['output_digest'][:12]}  {m['at']}")
    buf = StringIO()
    Console(file=buf, width=160, color_system=None).print(root)
    text = buf.getvalue().rstrip()
    lock = tree.get("lock")
    if lock and lock.get("problems"):
        found = "\n".join(f"  {p}" for p in lock["problems"])
        text = f"{lock['path']}: recipe {lock['recipe']}; the folder FAILS verification:\n{found}\n{text}"
    elif lock:
        text = (
            f"{lock['path']}: recipe {lock['recipe']} (verified: matches its folder and the registry's "
            f"content), materialization {lock['materialization'] or 'not recorded here'}\n{text}"
        )
    return text


def _evaluation(e: dict) -> str:
    grid = " × ".join(f"{n}[{len(v)}]" for n, v in e["grid"].items())
    imported = f", imported by {e['imported_by']}" if e.get("imported_by") else ""
    return f"evaluation {e['id']}: η grid {grid}, {', '.join(e['metrics'])} ({e['created_by']} {e['at']}{imported})"


SHOWN = 3  # items of a long list option shown in the text tree (JSON has them all)


def _short(value) -> str:
    """A list option as its count and first few items (e.g. 16 inexact tensors); JSON's words for
    booleans, not Python's."""
    if isinstance(value, list) and len(value) > SHOWN:
        return f"[{len(value)} items: {', '.join(map(str, value[:SHOWN]))}, …]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


ATTEMPTS = {"approved": "approval", "deprecated": "deprecation", "draft": "return to draft"}


def _source(role: str, src) -> str:
    """Where an import's θ+ / θ− (or low-rank factors) came from."""
    if isinstance(src, dict) and src.get("path"):
        files = src.get("files") or {}
        return f"{role} from {src['path']}" + (f" ({len(files)} files hashed)" if files else "")
    if isinstance(src, dict) and src.get("base"):
        return f"{role}: the base {src['base']} ({str(src.get('digest', ''))[:12]})"
    if isinstance(src, list):
        return f"{role}: {len(src)} tensors"
    if isinstance(src, dict):  # e.g. the process that ran it: host=vm, pid=13436
        return f"{role}: " + ", ".join(f"{k}={_short(v)}" for k, v in src.items())
    return f"{role}: {_short(src)}"


def _decision(a: dict) -> str:
    reason = f": {a['reason']}" if a.get("reason") else ""
    if a["status"] == "refused":
        attempted = ATTEMPTS.get(a["attempted"], a["attempted"])
        return f"{attempted} by {a['actor']} refused at {a['at']}{reason}"
    return f"{a['status']} by {a['actor']} at {a['at']}{reason}"


@click.command("lineage")
@click.argument("ref", required=False)
@click.option("--lock", "lock", type=click.Path(exists=True), help="Walk upward from a registry-lock.json.")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also draw the lineage as a PNG.")
@pass_ctx
def lineage(ctx, ref: str | None, lock: str | None, plot: str | None) -> None:
    """Lineage of a recipe, vector or base: runs, vectors, recipes, aliases, approvals, outputs.

    \b
    Example:
      registry lineage helpful-safe@prod
      registry lineage --lock ./merged/registry-lock.json --plot lineage.png
    """
    if bool(ref) == bool(lock):
        raise click.UsageError("give exactly one of REF or --lock FILE")
    tree = ctx.registry.lineage_of_lock(lock) if lock else ctx.registry.lineage(ref)
    if plot:
        from registry.evaluation.plots import lineage_plot

        lineage_plot(tree, plot)
    emit(ctx, {**tree, "plot": plot}, render(tree) + (f"\nplot written to {plot}" if plot else ""))
    problems = (tree.get("lock") or {}).get("problems")
    if problems:
        raise click.ClickException(f"lock check found {len(problems)} problem(s): {problems[0]}")


COMMANDS = [lineage]
