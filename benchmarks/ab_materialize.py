"""A/B: materialize time of two source trees on the same store, runs interleaved.

    python benchmarks/ab_materialize.py OLD_TREE NEW_TREE [--layers 16] [--rounds 5]

Both trees are imported through PYTHONPATH from the same virtual environment and work on
one registry home (the store format is shared), alternating A, B, A, B … so that load from
other processes on a shared machine falls on both alike. Used to show that a refactor
keeps the per-byte path's speed. Prints the raw JSON report.
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/registry-bench"))
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    work = args.workdir / f"l{args.layers}"
    models = work / "models"
    if not (models / "minus" / "model.safetensors.index.json").exists():
        subprocess.run(
            [sys.executable, str(HERE / "make_models.py"), str(models), "--layers", str(args.layers)],
            check=True,
            stdout=sys.stderr,
        )
    home = work / "ab-home"
    shutil.rmtree(home, ignore_errors=True)
    cli = [sys.executable, "-m", "registry.cli"]
    envs = {
        tag: {**os.environ, "REGISTRY_HOME": str(home), "PYTHONPATH": str(tree.resolve())}
        for tag, tree in (("old", args.old), ("new", args.new))
    }
    run([*cli, "init"], envs["new"])
    run([*cli, "base", "add", "big", str(models / "base")], envs["new"])
    pos, neg = str(models / "plus"), str(models / "minus")
    run([*cli, "vector", "import", "phi", "--base", "big", "--positive", pos, "--negative", neg], envs["new"])
    (work / "ab-recipe.yaml").write_text("name: r\nbase: big\nterms:\n  - vector: phi\n    weight: 1.0\n")
    run([*cli, "recipe", "add", str(work / "ab-recipe.yaml")], envs["new"])
    walls: dict[str, list[float]] = {"old": [], "new": []}
    rss: dict[str, list[int]] = {"old": [], "new": []}
    for i in range(args.rounds):
        for tag in ("old", "new") if i % 2 == 0 else ("new", "old"):
            out = work / f"ab-out-{tag}"
            w, r = run([*cli, "materialize", "r", "--out", str(out), "--force", "--no-reuse"], envs[tag])
            walls[tag].append(round(w, 3))
            rss[tag].append(r)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
        "load_average_at_end": os.getloadavg(),
        "layers": args.layers,
        "old_tree": str(args.old),
        "new_tree": str(args.new),
        **{
            tag: {
                "median_wall_s": statistics.median(walls[tag]),
                "walls": walls[tag],
                "peak_rss_mb": max(rss[tag]) / 1e6,
            }
            for tag in walls
        },
    }
    report["new_over_old"] = report["new"]["median_wall_s"] / report["old"]["median_wall_s"]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
