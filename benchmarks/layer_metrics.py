"""Structure of a registry/ tree: modules, import arrows, cycles, function-local project imports.

    python benchmarks/layer_metrics.py TREE [TREE ...] --out benchmarks/results/FILE.json

Counts import statements between registry modules (an import of a package counts as one of
its `__init__`); cycles are the strongly connected components of that graph with more than
one module; a function-local import is one made inside a def.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path


def measure(tree: Path) -> dict:
    root = tree / "registry"
    mods = {}
    for p in sorted(root.rglob("*.py")):
        mods[".".join(p.relative_to(tree).with_suffix("").parts).removesuffix(".__init__")] = p

    def known(target: str) -> str:
        while target not in mods and "." in target:
            target = target.rsplit(".", 1)[0]
        return target

    edges: dict[str, set[str]] = defaultdict(set)
    local = {"cli": 0, "library": 0}

    def visit(name: str, node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            targets = []
            if isinstance(child, ast.ImportFrom) and (child.module or "").split(".")[0] == "registry":
                for a in child.names:
                    full = f"{child.module}.{a.name}"
                    targets.append(known(full) if full in mods else known(child.module))
            elif isinstance(child, ast.Import):
                targets = [known(a.name) for a in child.names if a.name.split(".")[0] == "registry"]
            for t in targets:
                if t != name:
                    edges[name].add(t)
            if targets and in_function:
                local["cli" if name.startswith("registry.cli") or name == "registry" else "library"] += 1
            visit(name, child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    for name, p in mods.items():
        visit(name, ast.parse(p.read_text()), False)
    cycles = strongly_connected(list(mods), edges)
    return {
        "commit": subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "modules": len(mods),
        "top_level_modules": len(list(root.glob("*.py"))),
        "import_arrows": sum(len(v) for v in edges.values()),
        "cycles": cycles,
        "function_local_project_imports": local,
        "longest_module_lines": max(len(p.read_text().splitlines()) for p in mods.values()),
    }


def strongly_connected(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; components with more than one module are import cycles."""
    sys.setrecursionlimit(10_000)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in nodes:
        if v not in index:
            strong(v)
    return sorted(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("trees", nargs="+", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    report = {str(t): measure(t) for t in args.trees}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
