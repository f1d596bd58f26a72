"""Behaviour diff of two source trees: one fixed CLI session, every `--help`, and old data read by new code.

    python benchmarks/compare_trees.py OLD_TREE NEW_TREE [--old-python P] [--new-python P]
        [--workdir DIR] [--out results/DATE-LABEL-behaviour.json]

Made for refactors that must not change behaviour (issue 22's layers). Each tree runs in its
own folder with PYTHONPATH pointing at it (as ab_materialize.py does; --old-python gives the
old tree an interpreter whose environment has its own entry points) and proves which
registry it imports. Then, per tree:

1. the tiny model is built by that tree's own builder (old: registry.tinymodel, new:
   registry.testing.tiny_model); the report says whether both builders wrote the same bytes.
   Both sessions then use the old tree's models, so that only the CLI's behaviour differs;
2. one fixed session (init, base add, two vector imports, recipe add, approve, alias,
   materialize twice, verify, lineage, list/show, log, and four refusals) runs once in a fresh
   home as plain text and once in another with `--json`, capturing exit code, stdout and
   stderr of every command;
3. `--help` of every command of the click tree (walked in-process, COLUMNS=80).

Outputs are normalised (run folders, tree paths, timestamps, durations; the rules are in the
report) and diffed. Last, the NEW tree opens the home the OLD tree wrote: the same read
commands must print what the old tree printed on that home, verify must pass, and a fresh
materialize (--no-reuse) must write the same bytes as the old tree's materialize.
Prints and writes a JSON report: per command identical true/false, with the diff if not.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report import emit, load  # noqa: E402

BUILDERS = {"old": "registry.tinymodel", "new": "registry.testing.tiny_model"}
RECIPE = "name: r\nbase: tiny\nmethod: linear\nterms:\n  - vector: helpful\n    weight: 1.0\n"
RECIPE += "  - vector: concise\n    weight: 0.5\n"

HELP_WALKER = """
import json, click
from click.testing import CliRunner
from registry.cli import main

def walk(cmd, path):
    yield path
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd, info_name=path[-1])
        for name in cmd.list_commands(ctx):
            yield from walk(cmd.get_command(ctx, name), [*path, name])

out = {}
for path in walk(main, ["registry"]):
    r = CliRunner().invoke(main, [*path[1:], "--help"], prog_name="registry", terminal_width=80)
    out[" ".join(path)] = {"exit_code": r.exit_code, "stdout": r.output, "stderr": ""}
print(json.dumps(out))
"""


def session(models: Path, run: Path) -> list[tuple[str, list[str]]]:
    """The fixed session: (label, argv after `registry`); paths are inside `run` or `models`."""
    out = str(run / "out")
    return [
        ("init", ["init"]),
        ("base add", ["base", "add", "tiny", str(models / "base")]),
        ("base list", ["base", "list"]),
        ("base show", ["base", "show", "tiny"]),
        (
            "vector import (θ+ and θ−)",
            [
                *("vector", "import", "helpful", "--base", "tiny"),
                *("--positive", str(models / "plus"), "--negative", str(models / "minus")),
            ],
        ),
        (
            "vector import (θ− = base)",
            ["vector", "import", "concise", "--base", "tiny", "--positive", str(models / "plus2")],
        ),
        ("recipe add", ["recipe", "add", str(run / "recipe.yaml")]),
        ("recipe alias unapproved (refused)", ["recipe", "alias", "r@v1", "prod"]),
        ("approve recipe, vectors draft (refused)", ["approve", "r@v1", "--reason", "diff"]),
        ("approve vector", ["approve", "--vector", "helpful@v1", "--reason", "behaviour diff"]),
        ("approve vector 2", ["approve", "--vector", "concise@v1", "--reason", "behaviour diff"]),
        ("approve", ["approve", "r@v1", "--reason", "behaviour diff", "--actor", "bench"]),
        ("recipe alias", ["recipe", "alias", "r@v1", "prod"]),
        ("materialize", ["materialize", "r@prod", "--out", out]),
        ("materialize again (reuses the verified output)", ["materialize", "r@prod", "--out", out]),
        ("materialize into a non-empty folder (refused)", ["materialize", "r@prod", "--out", str(run)]),
        ("verify", ["verify"]),
        ("verify --lock", ["verify", "--lock", str(run / "out" / "registry-lock.json")]),
        ("lineage recipe", ["lineage", "r@prod"]),
        ("lineage vector", ["lineage", "helpful"]),
        ("vector list", ["vector", "list"]),
        ("vector show", ["vector", "show", "helpful"]),
        ("vector show missing (refused)", ["vector", "show", "nosuch"]),
        ("recipe list", ["recipe", "list"]),
        ("recipe show", ["recipe", "show", "r@prod"]),
        ("log", ["log"]),
    ]


READS = [  # re-run by the NEW tree on the home the OLD tree wrote
    "base list",
    "base show",
    "verify",
    "verify --lock",
    "lineage recipe",
    "lineage vector",
    "vector list",
    "vector show",
    "recipe list",
    "recipe show",
]

NORMALISE = [  # (pattern, replacement, why)
    (
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?",
        "<TIME>",
        "wall-clock timestamps",
    ),
    (r"\b\d+(\.\d+)? ?(s|ms|seconds)\b", "<DURATION>", "elapsed times"),
    (r"\b\d+(\.\d+)? ?(MB|GB|kB|MiB|GiB)/s\b", "<RATE>", "throughputs"),
    (r'"seconds": \d+(\.\d+)?', '"seconds": <SECONDS>', "elapsed times in run records"),
    (r'"pid": \d+', '"pid": <PID>', "process ids in run records"),
]
REGISTRY_ID = re.compile(r'initialized registry ([0-9a-f]{8}) |"id": "([0-9a-f]{32})"')


def normalise(text: str, subs: dict[str, str]) -> str:
    """Run folders and tree paths by name, then the NORMALISE patterns."""
    for path, name in sorted(subs.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(path, name)
    for pattern, repl, _ in NORMALISE:
        text = re.sub(pattern, repl, text)
    return text


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def tree_digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


class Tree:
    """One source tree: its interpreter and an environment whose PYTHONPATH is the tree."""

    def __init__(self, tag: str, root: Path, python: str) -> None:
        self.tag, self.root, self.python = tag, root.resolve(), python

    def env(self, home: Path | None = None) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(self.root), "COLUMNS": "80", "TZ": "UTC"}
        env["REGISTRY_ACTOR"] = "bench"
        env.pop("REGISTRY_HOME", None)
        if home is not None:
            env["REGISTRY_HOME"] = str(home)
        return env

    def python_run(self, argv: list[str], home: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.python, *argv], env=self.env(home), cwd=self.root, capture_output=True, text=True
        )

    def cli(self, argv: list[str], home: Path) -> dict:
        p = self.python_run(["-m", "registry.cli", *argv], home)
        return {"argv": argv, "exit_code": p.returncode, "stdout": p.stdout, "stderr": p.stderr}


def diff(a: dict, b: dict, subs_a: dict[str, str], subs_b: dict[str, str]) -> dict:
    """identical after normalisation, or the unified diff of what differs (exit code too)."""
    out: dict = {}
    same = True
    for key in ("exit_code", "stdout", "stderr"):
        x = normalise(str(a[key]), subs_a).splitlines()
        y = normalise(str(b[key]), subs_b).splitlines()
        if x != y:
            same = False
            out[key] = "\n".join(difflib.unified_diff(x, y, "old", "new", lineterm="", n=1))
    return {"identical": same, **({"diff": out} if out else {})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--old-python", default=sys.executable, help="interpreter for the old tree")
    p.add_argument("--new-python", default=sys.executable, help="interpreter for the new tree")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/registry-compare"))
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    load_at_start = load()
    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    trees = {
        "old": Tree("old", args.old, args.old_python),
        "new": Tree("new", args.new, args.new_python),
    }
    proof = {}
    for tag, t in trees.items():
        r = t.python_run(["-c", "import registry; print(registry.__file__)"])
        if r.returncode:
            raise SystemExit(f"{tag} tree does not import: {r.stderr[-2000:]}")
        proof[tag] = r.stdout.strip()
    if proof["old"] == proof["new"]:
        raise SystemExit(f"both trees import the same registry ({proof['new']}): nothing to compare")

    # 1. tiny models, each tree's own builder (trees and sessions run side by side: the
    # sessions are independent homes, and a shared machine gives each process a small share)
    def build(tag: str) -> dict[str, str]:
        folder = work / tag / "models"
        r = trees[tag].python_run(["-m", BUILDERS[tag], str(folder)])
        if r.returncode:
            raise SystemExit(f"{tag} tiny model builder failed: {r.stderr[-2000:]}")
        return tree_digests(folder)

    with ThreadPoolExecutor(4) as pool:
        model_digests = dict(zip(trees, pool.map(build, trees), strict=True))
    models = work / "old" / "models"

    # 2. the session, plain and --json, in a fresh home each
    def play(tag: str, mode: str) -> dict[str, dict]:
        run = work / tag / mode
        run.mkdir(parents=True)
        (run / "recipe.yaml").write_text(RECIPE)
        out = {}
        for label, argv in session(models, run):
            key = f"{label}{' --json' if mode == 'json' else ''}"
            out[key] = trees[tag].cli((["--json"] if mode == "json" else []) + argv, run / "home")
        return out

    def walk_help(tag: str) -> dict[str, dict]:
        r = trees[tag].python_run(["-c", HELP_WALKER])
        if r.returncode:
            raise SystemExit(f"{tag} help walk failed: {r.stderr[-2000:]}")
        return json.loads(r.stdout)

    plays = [(tag, mode) for tag in trees for mode in ("plain", "json")]
    with ThreadPoolExecutor(6) as pool:
        played = dict(zip(plays, pool.map(lambda tm: play(*tm), plays), strict=True))
        helps = dict(zip(trees, pool.map(walk_help, trees), strict=True))
    results: dict[str, dict[str, dict]] = {"old": {}, "new": {}}
    subs: dict[str, dict[str, str]] = {}
    for tag, t in trees.items():
        subs[tag] = {str(t.root): "<TREE>", str(models): "<MODELS>"}
        for mode in ("plain", "json"):
            subs[tag][str(work / tag / mode)] = "<RUN>"
            results[tag].update(played[tag, mode])
            init = played[tag, mode][f"init{' --json' if mode == 'json' else ''}"]["stdout"]
            for found in REGISTRY_ID.findall(init):  # random per init; learned, then named
                subs[tag][found[0] or found[1]] = "<REGISTRY_ID>"

    commands = {}
    for key in sorted(set(results["old"]) | set(results["new"]), key=list(results["old"]).index):
        commands[key] = diff(results["old"][key], results["new"][key], subs["old"], subs["new"])
        commands[key]["exit_code"] = results["old"][key]["exit_code"]
        for stream in ("stdout", "stderr"):  # what was compared (the old tree's words, normalised)
            if text := normalise(results["old"][key][stream], subs["old"]):
                commands[key][stream] = text if len(text) <= 1500 else text[:1500] + " …"
    help_report = {}
    for key in sorted(set(helps["old"]) | set(helps["new"])):
        if key not in helps["old"] or key not in helps["new"]:
            help_report[key] = {"identical": False, "only_in": "old" if key in helps["old"] else "new"}
            continue
        help_report[key] = diff(helps["old"][key], helps["new"][key], subs["old"], subs["new"])

    # 4. the NEW tree on the home the OLD tree wrote (plain session)
    old_run = work / "old" / "plain"
    old_home = old_run / "home"
    cross_subs = {**subs["old"], str(work / "cross"): "<CROSS>"}
    cross = {}
    for label, argv in session(models, old_run):
        if label in READS:
            new_result = trees["new"].cli(argv, old_home)
            cross[label] = diff(results["old"][label], new_result, cross_subs, cross_subs)
            cross[label]["exit_code"] = new_result["exit_code"]
    cross_out = work / "cross" / "out"
    cross_out.parent.mkdir(parents=True)
    m = trees["new"].cli(["materialize", "r@prod", "--out", str(cross_out), "--no-reuse"], old_home)
    old_files, new_files = tree_digests(old_run / "out"), tree_digests(cross_out)
    differing = sorted(k for k in set(old_files) | set(new_files) if old_files.get(k) != new_files.get(k))
    file_diffs = {}
    for name in differing:
        a, b = old_run / "out" / name, cross_out / name
        if a.suffix in (".json", ".md", ".txt", ".yaml") and a.exists() and b.exists():
            file_diffs[name] = diff(
                {"exit_code": 0, "stdout": a.read_text(), "stderr": ""},
                {"exit_code": 0, "stdout": b.read_text(), "stderr": ""},
                {**cross_subs, str(old_run / "out"): "<OUT>"},
                {**cross_subs, str(cross_out): "<OUT>"},
            ).get("diff")
        else:
            file_diffs[name] = {"old": old_files.get(name), "new": new_files.get(name)}
    materialize_cross = {
        "exit_code": m["exit_code"],
        "stderr_tail": m["stderr"][-2000:],
        "files": len(new_files),
        "byte_identical": not differing and not m["exit_code"] and bool(new_files),
        "safetensors_identical": all(not k.endswith(".safetensors") for k in differing),
        "differing_files": file_diffs,
    }

    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_at_start": load_at_start,
        "load_average_at_end": load(),
        "old_tree": str(args.old),
        "new_tree": str(args.new),
        "imported": proof,
        "interpreter": {tag: t.python for tag, t in trees.items()},
        "normalisation": ["run folders, tree roots, model folder → <RUN>, <TREE>, <MODELS>"]
        + [f"{pattern} → {repl} ({why})" for pattern, repl, why in NORMALISE],
        "tiny_models_identical": model_digests["old"] == model_digests["new"],
        "summary": {
            "session_commands": len(commands),
            "session_identical": sum(c["identical"] for c in commands.values()),
            "help_pages": len(help_report),
            "help_identical": sum(c["identical"] for c in help_report.values()),
            "old_home_reads": len(cross),
            "old_home_reads_identical": sum(c["identical"] for c in cross.values()),
            "old_home_materialize_byte_identical": materialize_cross["byte_identical"],
        },
        "session": commands,
        "help": help_report,
        "new_tree_on_old_home": {"reads": cross, "materialize": materialize_cross},
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
