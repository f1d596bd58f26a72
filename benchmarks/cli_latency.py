"""Wall time of every read and light write command on a tiny registry, and what each imports.

    python benchmarks/cli_latency.py [--tree LABEL=DIR]... [--rounds 7]
                                     [--out-stem benchmarks/results/DATE-cli-latency]

Each `--tree` is a checkout of the project (default: `now=` this one). Per tree a tiny
registry is built with that tree's own code (a 137k-parameter bf16 Llama from
`registry.testing.tiny_model`, base `tiny`, vectors helpful and harmless, one draft recipe
version per round), then every command runs as its own process (`python -m registry.cli …`,
start-up included) once as a warm-up and `--rounds` times, trees and commands interleaved
round by round so a busy moment hits all of them alike. Writes take a fresh target each
round (`approve helpful-safe@vK+1`, then `recipe alias helpful-safe@vK+1 prod`). A last untimed run of
each command under `python -X importtime` records the cumulative import time of the watched
modules and of its heaviest third-party packages. Commands a tree does not have (`tag`,
`evaluation list`) are skipped for it. Output: `{stem}-{LABEL}.json` per tree, with the load
average before and after (timings at a load above 2 are noise).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from report import emit, load

WATCHED = [
    "ml_dtypes", "numpy", "zarr", "torch", "safetensors", "huggingface_hub", "transformers",
    "sqlalchemy", "sqlalchemy.orm", "alembic", "pydantic", "yaml", "rich", "cryptography",
    "psycopg", "registry.api", "registry.db.models",
]  # fmt: skip
READ_TARGET = 0.4  # seconds, median wall: list and show commands
WRITE_TARGET = 0.6  # approve, recipe alias, tag

# What the setup child runs with the tree's own code: models, registry, rows, and which commands exist.
SETUP = r"""
import json, sys
from pathlib import Path
from registry import Registry
from registry.cli import main
from registry.testing.tiny_model import build_tiny_llama, perturbed_copy

root, recipes = Path(sys.argv[1]), int(sys.argv[2])
base = build_tiny_llama(root / "models" / "base", seed=0)
plus = perturbed_copy(base, root / "models" / "plus", seed=1)
minus = perturbed_copy(base, root / "models" / "minus", seed=2)
plus2 = perturbed_copy(base, root / "models" / "plus2", seed=3)
reg = Registry.init(root / "home")
b = reg.add_base("tiny", str(base))
reg.import_vector("helpful", "tiny", plus)
reg.import_vector("harmless", "tiny", plus2, minus)
for k in range(recipes):
    reg.add_recipe({"name": "helpful-safe", "base": "tiny", "method": "linear", "terms": [
        {"vector": "helpful", "weight": 1.0}, {"vector": "harmless@v1", "weight": 0.5 + k / 100}]})
for v in ("helpful@v1", "harmless@v1"):
    reg.approve(v, "bench: the recipes use it", kind="vector")
reg.approve("helpful-safe@v1", "bench: the recipe that shows and lineage read")
try:
    from registry.console.accounts import add_user
    add_user(reg, "reviewer1", "reviewer")
except ImportError:
    pass
reg.close()
groups = {n: sorted(getattr(c, "commands", {})) for n, c in main.commands.items()}
print(json.dumps({"params": b.param_count, "commands": groups}))
"""


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def shim(tree: Path, where: Path) -> str:
    """PYTHONPATH for TREE: its registry, and its migrations and plugins under their installed names
    (the editable install maps those two to /work/main, which may be another commit)."""
    where.mkdir(parents=True, exist_ok=True)
    for name, folder in (("registry_migrations", "migrations"), ("registry_plugins", "plugins")):
        link = where / name
        if not link.exists():
            link.symlink_to(tree / folder)
    return f"{where}:{tree}"


def commands(available: dict[str, list[str]], k: int) -> dict[str, list[str]]:
    """Command label -> argv for round K (writes take helpful-safe@vK+1, a draft until then)."""
    want = {
        "--help": ["--help"],
        "base list": ["base", "list"],
        "base show": ["base", "show", "tiny"],
        "vector list": ["vector", "list"],
        "vector show": ["vector", "show", "helpful"],
        "recipe list": ["recipe", "list"],
        "recipe show": ["recipe", "show", "helpful-safe@v1"],
        "lineage": ["lineage", "helpful-safe@v1"],
        "policy show": ["policy", "show"],
        "user list": ["user", "list"],
        "trust list": ["trust", "list"],
        "log": ["log", "--limit", "20"],
        "evaluation list": ["evaluation", "list", "helpful-safe@v1"],
        "approve": ["approve", f"helpful-safe@v{k + 1}", "--reason", f"bench round {k}"],
        "recipe alias": ["recipe", "alias", f"helpful-safe@v{k + 1}", "prod"],
        "tag": ["tag", "helpful-safe@v1", f"round={k}"],
    }
    out = {}
    for label, argv in want.items():
        group, _, sub = label.partition(" ")
        if label == "--help" or (group in available and (not sub or sub in available[group])):
            out[label] = argv
    return out


def kind(label: str) -> str:
    if label in ("approve", "recipe alias", "tag"):
        return "write"
    return "help" if label == "--help" else "read"


class Failed(Exception):
    pass


def run(env: dict[str, str], argv: list[str], importtime: bool = False) -> tuple[float, float, str]:
    """One process: wall seconds, CPU seconds (user + system), stderr. Failed on a non-zero exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-m", "registry.cli", *argv]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise Failed(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stderr


def import_times(stderr: str) -> dict:
    """`-X importtime` lines -> watched modules' and heaviest third-party packages' cumulative ms."""
    cumulative: dict[str, int] = {}
    top_level_us = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cum, name = line.removeprefix("import time:").split("|")
        if not name.startswith("  "):  # one space: imported by no other module
            top_level_us += int(cum)
        cumulative[name.strip()] = max(cumulative.get(name.strip(), 0), int(cum))
    roots: dict[str, int] = {}
    for name, us in cumulative.items():
        root = name.split(".")[0]
        if root not in ("registry", "registry_plugins", "registry_migrations") and not root.startswith("_"):
            roots[root] = max(roots.get(root, 0), us)
    heaviest = sorted(roots.items(), key=lambda kv: -kv[1])[:8]
    return {
        "total_ms": round(top_level_us / 1000, 1),
        "watched_ms": {m: round(cumulative[m] / 1000, 1) for m in WATCHED if m in cumulative},
        "heaviest_ms": {m: round(us / 1000, 1) for m, us in heaviest},
        "modules": len(cumulative),
    }


def git_commit(tree: Path) -> str | None:
    p = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True)
    return p.stdout.strip() or None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", action="append", default=[], help="LABEL=DIR (repeatable; default now=.)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--workdir", type=Path, help="Where the registries go (default: a temporary folder).")
    p.add_argument("--out-stem", help="Writes STEM-LABEL.json per tree.")
    args = p.parse_args()
    trees = {}
    for spec in args.tree or [f"now={Path(__file__).resolve().parent.parent}"]:
        label, _, folder = spec.partition("=")
        trees[label] = Path(folder).resolve()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cli-latency-"))

    setups, envs, reports = {}, {}, {}
    for label, tree in trees.items():
        root = work / label
        env = {**os.environ, "PYTHONPATH": shim(tree, root / "shim"), "REGISTRY_HOME": str(root / "home")}
        env.pop("REGISTRY_ACTOR", None)  # the OS user, the registry's creator and admin, acts
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", SETUP, str(root), str(args.rounds + 3)],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            raise SystemExit(f"setup of {label} failed: {out.stderr.strip()[-2000:]}")
        setups[label] = json.loads(out.stdout.strip().splitlines()[-1])
        envs[label] = env
        reports[label] = {
            "benchmark": "cli_latency",
            "label": label,
            "tree": str(tree),
            "commit": git_commit(tree),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
            "registry": {"params": setups[label]["params"], "setup_s": round(time.perf_counter() - t0, 2)},
            "rounds": args.rounds,
            "load_before": load(),
            "load_per_round": [],
            "targets_s": {"read": READ_TARGET, "write": WRITE_TARGET},
            "commands": {},
        }

    # round 1 is the warm-up (byte-code compiled, files cached); rounds 2.. are timed
    for k in range(1, args.rounds + 2):
        for label, env in envs.items():
            for name, argv in commands(setups[label]["commands"], k).items():
                if name in reports[label].setdefault("failed", {}):
                    continue
                try:
                    wall, cpu, _ = run(env, argv)
                except Failed as e:  # recorded, not timed: the others still run
                    reports[label]["failed"][name] = str(e)
                    continue
                if k == 1:
                    continue
                row = reports[label]["commands"].setdefault(
                    name, {"argv": argv, "kind": kind(name), "wall_s": [], "cpu_s": []}
                )
                row["wall_s"].append(round(wall, 4))
                row["cpu_s"].append(round(cpu, 4))
            if k > 1:
                reports[label]["load_per_round"].append(load())

    for label, env in envs.items():
        rep = reports[label]
        for name, row in rep["commands"].items():
            row["median_s"] = round(statistics.median(row["wall_s"]), 4)
            row["cpu_median_s"] = round(statistics.median(row["cpu_s"]), 4)
            argv = commands(setups[label]["commands"], args.rounds + 2)[name]
            try:
                row["imports"] = import_times(run(env, argv, importtime=True)[2])
            except Failed as e:
                row["imports"] = {"failed": str(e)}
            target = {"read": READ_TARGET, "write": WRITE_TARGET}.get(row["kind"])
            row["meets_target"] = None if target is None else row["median_s"] <= target
        rep["load_after"] = load()
        emit(rep, Path(f"{args.out_stem}-{label}.json") if args.out_stem else None)
    summary = {
        name: {label: reports[label]["commands"].get(name, {}).get("median_s") for label in reports}
        for name in {n for r in reports.values() for n in r["commands"]}
    }
    print(json.dumps(summary, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
