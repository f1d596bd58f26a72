"""The module table of docs/architecture.md, rendered from the package itself.

python tests/layout.py          # prints the table; tests/test_docs.py checks the doc holds it
python tests/layout.py --write  # replaces the table in docs/architecture.md
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "registry"
BEGIN, END = "<!-- modules:begin -->", "<!-- modules:end -->"


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


def render() -> str:
    rows = ["| module | purpose | imports (registry.…) |", "|---|---|---|"]
    for name, (doc, deps, _lines) in modules().items():
        rows.append(f"| `{name}` | {doc.replace('|', '/')} | {', '.join(deps)} |")
    return "\n".join([BEGIN, *rows, END])


if __name__ == "__main__":
    import sys

    if "--write" in sys.argv:
        doc = PACKAGE.parent / "docs" / "architecture.md"
        text = doc.read_text()
        doc.write_text(text[: text.index(BEGIN)] + render() + text[text.index(END) + len(END) :])
    else:
        print(render())
