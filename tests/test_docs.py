"""The CLI reference in docs/ is generated from the commands and must be current."""

from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_cli_reference_is_current(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    from registry.cli.reference import render

    assert (DOCS / "cli.md").read_text() == render(), "run: python -m registry.cli.reference > docs/cli.md"


def test_readme_commands_match_ci():
    readme = (DOCS.parent / "README.md").read_text()
    ci = (DOCS.parent / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in readme, "the README's test command and .ci/run must be the same"
