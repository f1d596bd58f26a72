"""How to install, as the docs say it: only commands that work (the package is on no index),
and one table of extras that matches pyproject.toml (issue 34, items 1 and 7)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT = ROOT / "docs" / "deployment.md"
# `pip install preference-registry` / `pip install -U preference-registry`: asks an index for a
# package no index has. With extras (`'preference-registry[train]'`) pip satisfies the name from
# the installed package, which is where a refusal naming an extra is shown: that one works.
BOGUS = re.compile(r"pip\s+install\s+(?:-U\s+|--upgrade\s+)?['\"]?preference-registry(?!\[)")


def texts() -> dict[str, str]:
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "examples").iterdir()]
    files += [*(ROOT / "registry").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py"), ROOT / ".ci" / "run"]
    return {str(f.relative_to(ROOT)): f.read_text() for f in files if f.is_file()}


def test_no_doc_or_message_installs_from_an_index():
    found = texts()
    assert "README.md" in found and "registry/db/engine.py" in found
    bogus = {name: BOGUS.findall(text) for name, text in found.items() if BOGUS.search(text)}
    assert bogus == {}


def test_the_regex_sees_the_old_spellings():
    assert BOGUS.search("`pip install\npreference-registry` is the core")
    assert BOGUS.search("upgrade the package (pip install -U preference-registry)")
    assert not BOGUS.search("pip install 'preference-registry[train]'")


def extras_table() -> dict[str, str]:
    doc = DEPLOYMENT.read_text()
    table = doc[doc.index("<!-- extras -->") : doc.index("<!-- /extras -->")]
    rows = re.findall(r"^\| `\[([\w-]+)\]` \| ([^|]+) \|", table, re.M)
    return {name: installs.strip() for name, installs in rows}


def test_one_table_names_every_extra_pyproject_defines():
    defined = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    table = extras_table()
    assert sorted(table) == sorted(defined)
    for name, installs in table.items():  # what the table says each installs, pyproject installs
        if name == "dev":
            continue
        wanted = {re.split(r"[\[<>=~ ]", req)[0].lower() for req in defined[name]}
        assert {p.strip().lower() for p in installs.split(",")} == wanted, name


def test_every_extra_a_refusal_names_exists():
    from registry.util.extras import EXTRAS

    defined = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(defined)
    for extra, modules in EXTRAS.items():
        packages = " ".join(defined[extra]).lower()
        assert all(m.lower() in packages for m in modules), extra


def test_the_readme_points_at_the_table():
    readme = (ROOT / "README.md").read_text()
    anchor = "docs/deployment.md#6-installing-the-checkout-or-a-wheel-and-the-extras-a-pipeline-needs"
    assert anchor in readme
    assert (
        "## 6. Installing: the checkout or a wheel, and the extras a pipeline needs" in DEPLOYMENT.read_text()
    )


def test_readme_says_where_a_model_comes_from():
    readme = (ROOT / "README.md").read_text()
    use = readme[readme.index("## Use") : readme.index("From Python")]
    assert "python -m registry.testing.tiny_model ./models" in use
    assert "registry base add tiny ./models/base" in use
