"""The layer rules of docs/architecture.md, checked on the code itself."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests import layout


def test_import_linter_contracts_are_kept():
    """pyproject's [tool.importlinter]: layers import only downwards, no cycles in any package."""
    done = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports; raise SystemExit(lint_imports())"],
        cwd=layout.PACKAGE.parent,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout, done.stdout[-2000:]


def test_at_most_twelve_top_level_modules():
    top = sorted(p.name for p in layout.PACKAGE.glob("*.py"))
    assert len(top) <= 12, top


def local_project_imports(path) -> list[int]:
    """Line numbers of imports of registry modules made inside a function."""
    lines = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(fn):
                if (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "registry") or (
                    isinstance(node, ast.Import)
                    and any(a.name.split(".")[0] == "registry" for a in node.names)
                ):
                    lines.append(node.lineno)
    return lines


def test_project_modules_are_imported_at_the_top():
    """Only the CLI (start-up time) and the package's lazy `Registry` import inside functions."""
    skip = {layout.PACKAGE / "__init__.py", *(layout.PACKAGE / "cli").rglob("*.py")}
    offenders = {
        str(p.relative_to(layout.PACKAGE.parent)): lines
        for p in sorted(layout.PACKAGE.rglob("*.py"))
        if p not in skip and (lines := local_project_imports(p))
    }
    assert not offenders, offenders


def test_the_checks_catch_a_local_import(tmp_path):
    """The scanner above is not vacuous: a function-local registry import is found."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from registry.errors import RegistryError\n    return RegistryError\n")
    assert local_project_imports(f) == [2]


def test_every_project_import_resolves():
    """The CLI's function-local imports run only when a command does: check each names something real."""
    import importlib

    missing = []
    for p in sorted(layout.PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("registry")
                and not node.level
            ):
                module = importlib.import_module(node.module)
                for a in node.names:
                    if (
                        not hasattr(module, a.name)
                        and importlib.util.find_spec(f"{node.module}.{a.name}") is None
                    ):
                        missing.append(
                            f"{p.relative_to(layout.PACKAGE.parent)}:{node.lineno} {node.module}.{a.name}"
                        )
    assert not missing, missing
