"""Evaluations in the console: the vector and recipe pages draw the recorded numbers (line plots,
heatmaps) and the sample answers side by side, escape every answer (model output is hostile),
count only evaluations of the exact digest on its base; the queue shows evidence; REST serves
the records as `registry evaluation list --json` does."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

import pytest

from registry.console import svg
from tests.console.conftest import sign_in
from tests.console.evaluations import HOSTILE, PROMPTS, answer, metrics, record

NS = {"s": svg.SVG_NS}
ETAS = [-1.0, -0.5, 0.0, 0.5, 1.0]


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", page, re.S)]


def plot_points(root: ET.Element) -> dict[float, float]:
    return {float(g.get("data-eta")): float(g.get("data-value")) for g in root.findall("s:g", NS)
            if "point" in g.get("class", "").split()}  # fmt: skip


def cell_values(root: ET.Element) -> dict[tuple[float, float], float]:
    return {(float(g.get("data-x")), float(g.get("data-y"))): float(g.get("data-value"))
            for g in root.findall("s:g", NS) if "cell" in g.get("class", "").split()}  # fmt: skip


def table_rows(page: str, table_class: str) -> list[list[str]]:
    body = re.search(rf'<table class="{table_class}">(.*?)</table>', page, re.S).group(1)
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_vector_page_plots_every_metric_and_answers_side_by_side(console):
    rec = record(console.reg, "vector", "helpful@v1", {"helpful": ETAS})
    c = console.client()
    sign_in(c, "victor")  # a viewer reads evidence too
    page = c.get("/vectors/helpful@v1").text
    plots = {r.find("s:title", NS).text: r for r in svgs(page) if "evplot" in r.get("class", "")}
    assert set(plots) == {f"{m} over η (helpful)" for m in ("answer_length", "ppl_drift", "mattr")}
    for m in ("answer_length", "ppl_drift", "mattr"):
        got = plot_points(plots[f"{m} over η (helpful)"])
        assert got == pytest.approx({e: metrics({"helpful": e})[m] for e in ETAS})
    # the same prompt in a row, η in columns (ascending), each answer in its cell
    rows = table_rows(page, "samples")
    assert rows[0] == ["prompt", *(f"η = {svg.eta(e)}" for e in ETAS)]
    assert [r[0] for r in rows[1:]] == list(PROMPTS)
    for r in rows[1:]:
        assert r[1:] == [answer(r[0], {"helpful": e}) for e in ETAS]
    # who ran it, when, on which prompts, seed, decoding, evaluators
    meta = dict((r[0], r[1]) for r in table_rows(page, "kv evaluation-meta") if len(r) == 2)
    assert meta["run by"] == f"carol at {rec.created_at:%Y-%m-%d %H:%M:%S} UTC, 12.5 s"
    assert meta["prompts"] == f"plugin verbose 2.1.0 held-out split (2 prompts) · digest {'ab' * 6}"
    assert meta["seed"] == "7" and meta["decoding"] == '{"max_new_tokens": 32, "temperature": 0}'
    assert "answer_length 1" in meta["evaluators"] and "torch 2.5.0" in meta["library versions"]
    # perplexity drift per point (no limit set in this registry's policy)
    drift = table_rows(page, "drift")[1:]
    assert [float(r[1]) for r in drift] == pytest.approx([metrics({"helpful": e})["ppl_drift"] for e in ETAS])
    assert "no retention limit set" in page


def test_recipe_page_draws_a_heatmap_per_metric_of_a_two_term_grid(console):
    grid = {"helpful": [-1.0, 0.0, 1.0], "harmless": [-0.5, 0.5]}
    record(console.reg, "recipe", "mix@v1", grid)
    c = console.client()
    sign_in(c, "bob")
    page = c.get("/recipes/mix@v1").text
    maps = {r.find("s:title", NS).text: r for r in svgs(page) if "heat" in r.get("class", "")}
    assert len(maps) == 3
    for m in ("answer_length", "ppl_drift", "mattr"):
        cells = cell_values(maps[f"{m} over η (helpful) and η (harmless)"])
        want = {
            (a, b): metrics({"helpful": a, "harmless": b})[m]
            for a in grid["helpful"]
            for b in grid["harmless"]
        }
        assert cells == pytest.approx(want)
    rows = table_rows(page, "samples")
    assert len(rows[0]) == 1 + 6 and rows[0][1] == "helpful -1 · harmless -0.5"


def test_hostile_answers_and_texts_are_escaped(console):
    def hostile(prompt: str, etas: dict[str, float]) -> str:
        return HOSTILE[int(etas["helpful"] + 1) % len(HOSTILE)]

    record(
        console.reg,
        "vector",
        "helpful@v1",
        {"helpful": [-1.0, 0.0, 1.0]},
        answers=hostile,
        prompts=("<b>bold?</b>", "q\u202eevil"),
        prompts_source='<script>alert("src")</script>',
    )
    c = console.client()
    sign_in(c, "bob")
    page = c.get("/vectors/helpful@v1").text
    assert "<script>alert" not in page and "<img" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;alert(&#34;src&#34;)&lt;/script&gt;" in page
    # direction controls never reach the page raw: a reviewer sees them named
    assert not re.search("[\u202a-\u202e\u2066-\u2069]", page)
    assert "safe⟨U+202E⟩txt.exe⟨U+2066⟩hidden⟨U+2069⟩" in page and "q⟨U+202E⟩evil" in page
    rows = table_rows(page, "samples")
    assert rows[1][1:] == [
        html.unescape(h) for h in (HOSTILE[0], HOSTILE[1], "safe⟨U+202E⟩txt.exe⟨U+2066⟩hidden⟨U+2069⟩")
    ]


def test_only_the_exact_digest_on_its_base_counts(console, models):
    reg = console.reg
    record(reg, "vector", "helpful@v1", {"helpful": ETAS})
    # an evaluation of helpful's digest claimed on another base digest is not evidence
    record(reg, "vector", "harmless@v1", {"harmless": [0.0, 1.0]}, base_digest="0" * 64)
    c = console.client()
    sign_in(c, "bob")
    page = c.get("/vectors/harmless@v1").text
    assert "not the base registered now" in page
    # a new version of helpful (another digest) has no evaluation
    reg.actor = "alice"
    reg.import_vector("helpful", "tiny", models["plus2"])
    assert 'id="no-evaluation"' in c.get("/vectors/helpful@v2").text
    assert 'id="no-evaluation"' not in c.get("/vectors/helpful@v1").text
    queue = c.get("/queue").text
    vec = re.search(r'<table id="queue-vectors".*?</table>', queue, re.S).group(0)
    badge = {m[0]: m[1] for m in re.findall(r'>([a-z]+@v\d)</a>.*?class="badge ([a-z-]+)"', vec, re.S)}
    assert badge == {"helpful@v1": "evidence", "harmless@v1": "no-evidence", "helpful@v2": "no-evidence"}
    rec = re.search(r'<table id="queue-recipes".*?</table>', queue, re.S).group(0)
    assert "badge no-evidence" in rec and "badge evidence" not in rec
    record(reg, "recipe", "mix@v1", {"helpful": [0.0, 1.0]})
    rec = re.search(r'<table id="queue-recipes".*?</table>', c.get("/queue").text, re.S).group(0)
    assert "badge evidence" in rec


def test_rest_evaluations(console):
    reg = console.reg
    one = record(reg, "vector", "helpful@v1", {"helpful": ETAS})
    two = record(reg, "vector", "helpful@v1", {"helpful": [0.0, 1.0]}, seed=8)
    c = console.client()
    r = c.get("/api/v1/vectors/helpful@v1/evaluations", headers=console.auth("victor"))
    assert r.status_code == 200
    assert r.json() == [two.as_json(), one.as_json()]  # newest first, as `evaluation list --json`
    assert r.json()[1]["points"][4]["metrics"]["answer_length"] == pytest.approx(30.0)
    assert c.get("/api/v1/vectors/harmless/evaluations", headers=console.auth("victor")).json() == []
    mine = record(reg, "recipe", "mix@v1", {"helpful": [0.0, 1.0], "harmless": [0.0, 0.5]})
    got = c.get("/api/v1/recipes/mix@v1/evaluations", headers=console.auth("bob")).json()
    assert got == [mine.as_json()] and len(got[0]["points"]) == 4
    assert c.get("/api/v1/recipes/mix/evaluations").status_code == 401
    bad = c.get("/api/v1/recipes/nothing@v1/evaluations", headers=console.auth("bob"))
    assert bad.status_code == 404 and "nothing" in bad.json()["error"]
    assert c.get("/api/v1/vectors/nothing/evaluations", headers=console.auth("bob")).status_code == 404
    paths = c.get("/api/v1/openapi.json").json()["paths"]
    assert (
        "get" in paths["/api/v1/vectors/{ref}/evaluations"]
        and "get" in paths["/api/v1/recipes/{ref}/evaluations"]
    )


def test_drift_against_the_policy_limit(console):
    from registry.governance.policy import set_policy

    reg = console.reg
    set_policy(reg, "approval_max_ppl_drift", 3)  # percent, as the ppl_drift metric
    record(reg, "vector", "helpful@v1", {"helpful": ETAS}, details={"subject_point": {"helpful": 1.0}})
    c = console.client()
    sign_in(c, "bob")
    page = c.get("/vectors/helpful@v1").text
    drift = next(r for r in svgs(page) if r.find("s:title", NS).text == "ppl_drift over η (helpful)")
    assert float(drift.find("s:g[@class='threshold']", NS).get("data-value")) == 3.0
    over = [float(g.get("data-eta")) for g in drift.findall("s:g[@class='point over']", NS)]
    assert over == [-1.0, 1.0]  # 4 % at η = ±1, 1 % at ±0.5, 0 at 0
    rows = table_rows(page, "drift")[1:]
    assert [(r[0], r[3]) for r in rows] == [
        ("η = -1", "over the limit"), ("η = -0.5", "within"), ("η = 0", "within"),
        ("η = 0.5", "within"), ("η = 1", "over the limit"),
    ]  # fmt: skip
    summary = html.unescape(
        re.sub(r"<[^>]+>", "", re.search(r'<p class="drift-summary">(.*?)</p>', page, re.S).group(1))
    )
    assert "At helpful@v1 itself: drift +4.00 %, over the team's limit of 3 %" in " ".join(summary.split())
    set_policy(reg, "approval_max_ppl_drift", 5)
    page = c.get("/vectors/helpful@v1").text
    assert "within the team's limit of 5 %" in " ".join(html.unescape(re.sub(r"<[^>]+>", "", page)).split())


def test_page_says_when_policy_requires_evidence_that_is_missing(console):
    from registry.governance.policy import set_policy

    reg = console.reg
    c = console.client()
    sign_in(c, "bob")
    assert 'id="evidence-required"' not in c.get("/vectors/helpful@v1").text  # policy off
    set_policy(reg, "approval_requires_evaluation", True)
    assert 'id="evidence-required"' in c.get("/vectors/helpful@v1").text
    assert 'id="evidence-required"' in c.get("/recipes/mix@v1").text
    record(reg, "vector", "helpful@v1", {"helpful": [0.0, 1.0]}, base_digest="0" * 64)  # another base
    assert 'id="evidence-required"' in c.get("/vectors/helpful@v1").text
    record(reg, "vector", "helpful@v1", {"helpful": [0.0, 1.0]})
    assert 'id="evidence-required"' not in c.get("/vectors/helpful@v1").text
    assert 'id="evidence-required"' in c.get("/vectors/harmless@v1").text
