"""The layer diagram and module table of docs/architecture.md, rendered from the code itself.

python -m tests.layout          # prints both; tests/test_docs.py checks the doc holds them
python -m tests.layout --write  # replaces them in docs/architecture.md
"""

from __future__ import annotations

import ast
import tomllib
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "registry"
BEGIN, END = "<!-- modules:begin -->", "<!-- modules:end -->"
LAYERS_BEGIN, LAYERS_END = "<!-- layers:begin -->", "<!-- layers:end -->"


def modules() -> dict[str, tuple[str, list[str], int]]:
    """module -> (first docstring line, registry modules it imports, line count)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        if name.endswith("__main__"):
            continue
        tree = ast.parse(path.read_text())
        doc = (ast.get_docstring(tree) or "").strip().splitlines()
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("registry."):
                deps.add(node.module)
            elif isinstance(node, ast.ImportFrom) and node.module == "registry":
                deps.update(f"registry.{a.name}" for a in node.names if a.name != "Registry")
        short = sorted(d.removeprefix("registry.") for d in deps - {name})
        out[name] = (doc[0] if doc else "", short, len(path.read_text().splitlines()))
    return out


def layers() -> list[list[str]]:
    """The layers contract of pyproject.toml, top first; siblings in one layer share a row."""
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["importlinter"]
    [contract] = [c for c in config["contracts"] if c["type"] == "layers"]
    return [[part.strip() for part in layer.split("|")] for layer in contract["layers"]]


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "registry" else None


def render_layers() -> str:
    """One row per layer: its packages and modules, and how many imports go to each layer below."""
    mods = modules()
    arrows: dict[str, Counter] = {}
    for name, (_doc, deps, _n) in mods.items():
        src = layer_of(name)
        for d in deps:
            dst = layer_of(f"registry.{d}")
            if src and dst and dst != src:
                arrows.setdefault(src, Counter())[dst] += 1
    rows = ["| layer (top first) | holds | imports into lower layers |", "|---|---|---|"]
    for row in layers():
        for part in row:
            members = sorted(
                n.removeprefix(f"registry.{part}.")
                for n in mods
                if layer_of(n) == part and n != f"registry.{part}"
            )
            holds = ", ".join(members) if members else f"`{part}.py`"
            out = ", ".join(f"{k} {v}" for k, v in sorted(arrows.get(part, Counter()).items()))
            label = f"`{part}`"
            if len(row) > 1:  # independent siblings: neither imports the other
                label += f" (beside {', '.join(f'`{p}`' for p in row if p != part)})"
            rows.append(f"| {label} | {holds} | {out} |")
    return "\n".join([LAYERS_BEGIN, *rows, LAYERS_END])


def render() -> str:
    rows = ["| module | purpose | imports (registry.…) |", "|---|---|---|"]
    for name, (doc, deps, _lines) in modules().items():
        rows.append(f"| `{name}` | {doc.replace('|', '/')} | {', '.join(deps)} |")
    return "\n".join([BEGIN, *rows, END])


def replace(text: str, begin: str, end: str, block: str) -> str:
    return text[: text.index(begin)] + block + text[text.index(end) + len(end) :]


if __name__ == "__main__":
    import sys

    if "--write" in sys.argv:
        doc = PACKAGE.parent / "docs" / "architecture.md"
        text = replace(doc.read_text(), BEGIN, END, render())
        doc.write_text(replace(text, LAYERS_BEGIN, LAYERS_END, render_layers()))
    else:
        print(render_layers() + "\n\n" + render())
