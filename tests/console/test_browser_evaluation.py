"""Evidence in headless Chromium: the queue marks the evaluated draft, its page draws the plots
(SVG, no script) and shows the sample answers side by side; hostile answers stay text."""

from __future__ import annotations

import pytest

from tests.console.evaluations import HOSTILE, metrics, record
from tests.console.test_browser import CHROMIUM, browser, served, signed_in  # noqa: F401 (fixtures)

ETAS = [-1.0, -0.5, 0.0, 0.5, 1.0]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium"
)


def answers(prompt: str, etas: dict[str, float]) -> str:
    e = etas["helpful"]
    return HOSTILE[1] if e == 0.5 else f"{prompt} at η {e:g}"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_evaluation_in_a_real_browser(served, browser, console):  # noqa: F811
    url = served
    record(
        console.reg, "vector", "helpful@v1", {"helpful": ETAS}, answers=answers, prompts=("Explain rain.",)
    )
    bob = signed_in(browser, url, "bob")
    assert "evaluated" in bob.inner_text("#queue-vectors tr:has-text('helpful@v1') .badge")
    assert "no evaluation" in bob.inner_text("#queue-vectors tr:has-text('harmless@v1') .badge")
    bob.click("#queue-vectors >> text=helpful@v1")
    bob.wait_for_url("**/vectors/helpful@v1**")
    plots = bob.locator("#evaluations svg.evplot")
    assert plots.count() == 3
    box = plots.first.bounding_box()
    assert box and box["width"] >= 400 and box["height"] >= 200  # drawn, not collapsed
    line = bob.locator("#evaluations svg.evplot.line:has(title:text-is('answer_length over η (helpful)'))")
    values = line.locator("g.point text.value").all_text_contents()  # SVG: no innerText
    assert values == [f"{metrics({'helpful': e})['answer_length']:.1f}" for e in ETAS]
    # the sample answers: one row for the prompt, one column per η
    heads = bob.locator("table.samples thead th").all_inner_texts()
    assert heads == ["prompt", "η = -1", "η = -0.5", "η = 0", "η = 0.5", "η = 1"]
    cells = bob.locator("table.samples tbody tr").first.locator("td.answer").all_inner_texts()
    assert cells == [answers("Explain rain.", {"helpful": e}) for e in ETAS]
    # the hostile answer is text: no image element was made from it, no handler ran
    assert bob.locator("table.samples img").count() == 0 and bob.dialogs == []
    assert bob.locator("#evaluations script").count() == 0
