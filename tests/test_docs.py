"""The CLI reference in docs/ is generated from the commands and must be current."""

from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_cli_reference_is_current(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    from registry.cli.reference import render

    assert (DOCS / "cli.md").read_text() == render(), "run: python -m registry.cli.reference > docs/cli.md"


def readme_block_after(heading: str) -> list[str]:
    """The command lines of the first ```bash block after the paragraph starting `heading`."""
    readme = (DOCS.parent / "README.md").read_text()
    after = readme[readme.index(heading) :]
    block = after[after.index("```bash\n") + len("```bash\n") :]
    return block[: block.index("```")].strip().splitlines()


def test_readme_commands_match_ci():
    """What the README says to run is what CI runs, line for line: the browser's install too
    (issue 34, item 6: the README's command used to skip the browser test CI runs)."""
    ci = (DOCS.parent / ".ci" / "run").read_text().strip().splitlines()
    commands = [line for line in ci if line and not line.startswith(("#", "set -", "cd "))]
    readme = readme_block_after("Run the tests")
    assert commands == readme, "the README's test command and .ci/run must be the same"
    assert any("apt-get install" in line and "chromium" in line for line in readme)
    assert readme[-1].endswith("python -m pytest -q -p no:cacheprovider")


def test_architecture_table_is_current():
    from tests import layout

    doc = (DOCS / "architecture.md").read_text()
    table = doc[doc.index(layout.BEGIN) : doc.index(layout.END) + len(layout.END)]
    assert table == layout.render(), "run: python -m tests.layout --write"
    diagram = doc[doc.index(layout.LAYERS_BEGIN) : doc.index(layout.LAYERS_END) + len(layout.LAYERS_END)]
    assert diagram == layout.render_layers(), "run: python -m tests.layout --write"


def test_every_module_has_one_room():
    """Each module opens with its purpose, stays small, and no caller reaches into private state."""
    import re

    from tests import layout

    mods = layout.modules()
    assert all(doc for doc, _, _ in mods.values()), [m for m, (d, _, _) in mods.items() if not d]
    too_long = {m: n for m, (_, _, n) in mods.items() if n > 400}
    assert not too_long, too_long
    private = re.compile(r"\b(reg|core|self\.reg)\._[a-z]")
    offenders = [
        str(p)
        for p in [*layout.PACKAGE.rglob("*.py"), *(DOCS.parent / "tests").rglob("*.py")]
        if private.search(p.read_text())
    ]
    assert not offenders, offenders
