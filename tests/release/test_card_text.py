"""Text that reaches a model card's body is inert (issue 31, finding 8: notes could inject Markdown and HTML)."""

from __future__ import annotations

import re

import pytest

from registry.release.lockfile import card_text

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "`code` and ``more``",
    "line one\n\n# Injected heading\n\n| a | b |",
    "**bold** _it_ ~~s~~ ![img](http://x/y.png) & &amp;",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_card_text_leaves_no_markup_a_renderer_would_act_on(text):
    out = card_text(text)
    assert "\n" not in out  # cannot start a heading, a table or a list of its own
    unescaped = re.sub(r"\\.", "", out)  # what remains once every backslash escape is taken out
    assert not set(unescaped) & set("<>`[]()*_#|!~")
    assert "&" not in unescaped.replace("&amp;", "")
    # nothing is lost: unescaping gives the text back, with its whitespace folded
    assert re.sub(r"\\(.)", r"\1", out).replace("&amp;", "&") == " ".join(text.split())
