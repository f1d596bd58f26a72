"""Every transcript in the docs is a script's output, regenerated here and compared, so a doc
cannot drift from the code (issue 34, item 4). `python -m tests.transcripts --write` updates them."""

from __future__ import annotations

import re

import pytest

from tests.conftest import PG_SKIP
from tests.transcripts import ROOT, TRANSCRIPTS, begin, block, end, generate, normalized


@pytest.mark.parametrize("t", TRANSCRIPTS, ids=lambda t: t.name)
def test_transcript_is_what_its_script_prints(t):
    if t.needs_pg and PG_SKIP:
        pytest.skip(PG_SKIP)
    shown = block((ROOT / t.doc).read_text(), t.name)
    assert normalized(generate(t)) == normalized(shown), "run: python -m tests.transcripts --write"


def docs() -> dict[str, str]:
    return {
        str(p.relative_to(ROOT)): p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    }


def test_every_transcript_in_the_docs_is_generated():
    """A block of output (```text, or a session of `$ command` lines) stands between markers."""
    named = {(t.doc, t.name) for t in TRANSCRIPTS}
    loose = []
    for name, text in docs().items():
        for found in re.finditer(r"<!-- transcript ([\w-]+):", text):
            assert (name, found.group(1)) in named, f"{name}: no script makes transcript {found.group(1)}"
        inside = [(text.index(begin(t)), text.index(end(t))) for d, t in named if d == name]
        for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S):
            session = any(line.startswith("$ ") for line in m.group(2).splitlines())
            if (m.group(1) == "text" or session) and not any(a < m.start() < b for a, b in inside):
                loose.append(f"{name}: {m.group(2)[:60]!r}")
    assert loose == []


def test_the_docs_keep_no_policy_in_registry_toml():
    """Team policy lives in the database: no doc shows or says otherwise (it used to)."""
    for name, text in docs().items():
        assert "rules in `registry.toml`" not in text, name
        for t in TRANSCRIPTS:
            if t.doc == name:
                assert "[governance]" not in block(text, t.name) and "[interference]" not in block(
                    text, t.name
                )
