"""A/B: materialize (or verify) time of two source trees on the same store, runs interleaved.

    python benchmarks/ab_materialize.py OLD_TREE NEW_TREE [--layers 16] [--rounds 5]
        [--variants bf16|f32] [--verb materialize|verify] [--out results/DATE-ab-LABEL.json]
        [--old-python OLD_VENV/bin/python]

Both trees are imported through PYTHONPATH (by default from one virtual environment), each run
started in its tree (`python -m` puts the working folder first on sys.path), and work on
one registry home (the store format is shared), alternating A, B, A, B … so that load from
other processes on a shared machine falls on both alike. Used to show that a refactor
keeps the per-byte path's speed, or what a change to it gained; the outputs' sha256 must be
the same for both trees (the report says so). --variants f32: θ± as float32 master weights,
whose φ takes split16's dense path (make_models.py). Prints the raw JSON report.

--old-python: a tree whose installed metadata differs (entry points such as the zarr codec
`registry_split16`, moved by the layers refactor from registry.codec to registry.storage.codec)
needs an interpreter whose environment has that tree installed; the report records, per side,
the interpreter, the registry it imports and where its zarr codec entry point leads.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_materialize import run  # noqa: E402
from report import cpu, emit  # noqa: E402

from registry.util.digests import file_sha256  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/registry-bench"))
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--variants", choices=["bf16", "f32"], default="bf16")
    p.add_argument(
        "--verb", choices=["materialize", "verify"], default="materialize", help="the command timed"
    )
    p.add_argument(
        "--models", type=Path, help="base/, plus/, minus/ built already (e.g. bench_materialize's)"
    )
    p.add_argument("--out", type=Path)
    p.add_argument("--old-python", default=sys.executable, help="interpreter for the old tree")
    p.add_argument("--new-python", default=sys.executable, help="interpreter for the new tree")
    args = p.parse_args()
    load_at_start = os.getloadavg()
    work = args.workdir / (
        f"l{args.layers}" if args.variants == "bf16" else f"{args.variants}-l{args.layers}"
    )
    models = args.models or work / "models"
    if args.models is not None:
        work = args.workdir / f"ab-{args.models.parent.name}"
        work.mkdir(parents=True, exist_ok=True)
    elif not (models / "minus" / "model.safetensors.index.json").exists():
        make = [sys.executable, str(HERE / "make_models.py"), str(models), "--layers", str(args.layers)]
        subprocess.run(
            [*make, "--variants", args.variants],
            check=True,
            stdout=sys.stderr,
        )
    home = work / "ab-home"
    shutil.rmtree(home, ignore_errors=True)
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    pythons = {"old": args.old_python, "new": args.new_python}
    clis = {tag: [pythons[tag], "-m", "registry.cli"] for tag in trees}
    envs = {
        tag: {**os.environ, "REGISTRY_HOME": str(home), "PYTHONPATH": str(tree.resolve())}
        for tag, tree in (("old", args.old), ("new", args.new))
    }
    proof = (
        "import importlib.metadata as m, registry; print(registry.__file__); "
        "print(*[e.value for e in m.entry_points(group='zarr.codecs', name='registry_split16')])"
    )
    answers = {  # which registry each side really imports: the report proves A ≠ B
        tag: subprocess.run(
            [pythons[tag], "-c", proof],
            env=envs[tag],
            cwd=trees[tag],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        for tag in trees
    }
    loaded = {tag: answers[tag][0] for tag in trees}
    codec = {tag: answers[tag][1] for tag in trees}
    if loaded["old"] == loaded["new"]:
        raise SystemExit(f"both trees import the same registry ({loaded['new']}): nothing to compare")
    run([*clis["new"], "init"], envs["new"], cwd=trees["new"])
    run([*clis["new"], "base", "add", "big", str(models / "base")], envs["new"], cwd=trees["new"])
    pos, neg = str(models / "plus"), str(models / "minus")
    run(
        [*clis["new"], "vector", "import", "phi", "--base", "big", "--positive", pos, "--negative", neg],
        envs["new"],
        cwd=trees["new"],
    )
    (work / "ab-recipe.yaml").write_text("name: r\nbase: big\nterms:\n  - vector: phi\n    weight: 1.0\n")
    run([*clis["new"], "recipe", "add", str(work / "ab-recipe.yaml")], envs["new"], cwd=trees["new"])
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    digests: dict[str, set[str]] = {"old": set(), "new": set()}
    for i in range(args.rounds):
        for tag in ("old", "new") if i % 2 == 0 else ("new", "old"):
            out = work / f"ab-out-{tag}"
            if args.verb == "verify":  # re-hashes the base and every array; nothing written
                runs[tag].append(run([*clis[tag], "verify"], envs[tag], cwd=trees[tag]))
                continue
            cmd = [*clis[tag], "materialize", "r", "--out", str(out), "--force", "--no-reuse"]
            runs[tag].append(run(cmd, envs[tag], cwd=trees[tag]))
            digests[tag].add(",".join(file_sha256(f) for f in sorted(out.glob("*.safetensors"))))
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
        "cpu": cpu(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "layers": args.layers,
        "variants": args.variants,
        "verb": args.verb,
        "old_tree": str(args.old),
        "new_tree": str(args.new),
        "imported": loaded,
        "interpreter": pythons,
        "zarr_codec_entry_point": codec,
        **{
            tag: {
                "median_wall_s": statistics.median(r["wall_s"] for r in runs[tag]),
                "walls": [r["wall_s"] for r in runs[tag]],
                "median_cpu_s": statistics.median(r["cpu_s"] for r in runs[tag]),
                "cpus": [r["cpu_s"] for r in runs[tag]],
                "loads_before": [r["load1_before"] for r in runs[tag]],
                "rss_mb": [r["peak_rss_mb"] for r in runs[tag]],
                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[tag]),
            }
            for tag in runs
        },
        "same_output_bytes": len(digests["old"] | digests["new"]) == 1
        if args.verb == "materialize"
        else None,
    }
    report["new_over_old"] = round(report["new"]["median_wall_s"] / report["old"]["median_wall_s"], 3)
    report["models"] = str(models)
    # paired: the two runs of one round saw the same machine
    report["new_over_old_per_round"] = [
        round(n["wall_s"] / o["wall_s"], 3) for o, n in zip(runs["old"], runs["new"], strict=True)
    ]
    emit(report, args.out)


if __name__ == "__main__":
    main()
