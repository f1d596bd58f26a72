"""The console a reviewer works in (issue 34, items 13 and 20): a queue row says what it is
(norm, terms, interference) with one reason box and a confirmation after the decision; the
catalogue's recipes show aliases and deprecated vectors; the audit log is read as text, not as
Python; one version offers nothing to compare; adapters are marked; the heatmap uses the CLI
plot's colours; `/healthz` answers a load balancer without a sign-in."""

from __future__ import annotations

import re

import pytest

from tests.console.conftest import csrf_of, sign_in

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the pages, not the database


def rows_of(html: str, table: str) -> list[str]:
    body = html[html.index(f'<table id="{table}"') :]
    body = body[: body.index("</table>")]
    return body.split("<tr>")[2:]


@SQLITE
def test_queue_rows_say_what_they_are_with_one_reason_box_and_a_confirmation(console):
    reg = console.reg
    c = console.client()
    sign_in(c, "bob")
    html = c.get("/queue").text
    vectors, recipes = rows_of(html, "queue-vectors"), rows_of(html, "queue-recipes")
    assert len(vectors) == 2 and len(recipes) == 1
    for row in vectors + recipes:
        assert row.count('name="reason"') == 1 and row.count("<form") == 1
        assert 'class="approve"' in row and 'class="deprecate"' in row
    harmless = reg.vector("harmless")
    [row] = [r for r in vectors if ">harmless@v1</a>" in r]
    cos = abs(harmless.interference["cosines"]["helpful@v1"]["global"])
    assert f'<td class="num">{harmless.norm:.4g}</td>' in row and f"helpful@v1 <span>{cos:.3f}</span>" in row
    [row] = [r for r in vectors if ">helpful@v1</a>" in r]
    assert '<td class="interference">none</td>' in row  # imported first: nothing to compare with
    assert "+1·helpful@v1 +0.5·harmless@v1" in recipes[0] and f"{cos:.3f}" in recipes[0]

    csrf = csrf_of(html)
    r = c.post(
        "/vectors/helpful@v1/approve",
        data={"csrf": csrf, "reason": "eval ok", "base": "tiny", "next": "/queue"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/queue?ok=approved&done=helpful@v1"
    page = c.get(r.headers["location"]).text
    assert '<p class="ok" id="ok">helpful@v1 is now approved.</p>' in page
    assert reg.vector("helpful").status == "approved"
    # the same row's form deprecates through its second button (formaction), with the same reason box
    assert 'formaction="/recipes/mix@v1/deprecate"' in page
    r = c.post("/recipes/mix@v1/deprecate", data={"csrf": csrf, "reason": "superseded", "next": "/queue"})
    assert "mix@v1 is now deprecated." in r.text


@SQLITE
def test_catalogue_recipes_show_aliases_and_deprecated_vectors(console):
    reg = console.reg
    for v in ("helpful", "harmless"):
        reg.approve(v, "reviewed", kind="vector")
    reg.approve("mix@v1", "ok")
    reg.set_alias("mix@v1", "canary")
    reg.deprecate("harmless@v1", "regressed", kind="vector")
    c = console.client()
    sign_in(c, "victor")
    [row] = rows_of(c.get("/").text, "recipes")
    assert '<td class="aliases">canary</td>' in row
    assert "uses deprecated harmless@v1" in row and "status-approved" in row


@SQLITE
def test_audit_log_reads_as_text_and_recipe_page_marks_adapters(console, tmp_path):
    from registry.testing.factors import random_factors

    reg = console.reg
    reg.import_low_rank("lr", "tiny", random_factors(console.reg.base("tiny").path, 2, seed=1))
    reg.add_recipe({"name": "solo", "base": "tiny", "terms": [{"vector": "lr", "weight": 1.0}]})
    reg.materialize_adapter("solo", tmp_path / "adapter")  # details hold {"svd_rank": None, ...}
    [event] = [e for e in reg.log("solo@v1") if e.action == "materialize.adapter"]
    assert event.details["adapter"]["svd_rank"] is None
    c = console.client()
    sign_in(c, "victor")
    html = c.get("/audit").text
    table = html[html.index('<table id="audit">') :]
    assert "None" not in table and "'svd_rank'" not in table and "True" not in table
    assert "&#34;svd_rank&#34;: null" in table and "&#34;exact&#34;: true" in table
    times = re.findall(r"<tr><td>([^<]*)</td>", table)
    assert times and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in times)

    page = c.get("/recipes/solo@v1").text
    assert 'aria-label="compare with"' not in page and "has one version" in page
    [row] = rows_of(page, "materializations")
    assert "LoRA adapter" in row
    reg.add_recipe({"name": "solo", "base": "tiny", "terms": [{"vector": "lr", "weight": 0.5}]})
    assert 'aria-label="compare with"' in c.get("/recipes/solo@v2").text
    lineage = c.get("/lineage/solo@v1").text
    assert "adapter (adapter)" in lineage


def test_heatmap_colours_are_the_cli_plots():
    import matplotlib

    from registry.console.app import HERE
    from registry.console.render import heat

    css = (HERE / "static" / "console.css").read_text()
    found = {
        int(k): tuple(map(int, v.split(",")))
        for k, v in re.findall(r"\.h(-?\d+) \{ background: rgb\(([\d,]+)\)", css)
    }
    assert sorted(found) == list(range(-10, 11))
    cmap = matplotlib.colormaps["RdBu_r"]  # registry/evaluation/plots.py's interference plot
    for k, rgb in found.items():
        want = tuple(round(x * 255) for x in cmap((k / 10 + 1) / 2)[:3])
        assert rgb == want, k
    red, blue = found[int(heat(0.95)[1:])], found[int(heat(-0.95)[1:])]
    assert red[0] > red[2] and blue[2] > blue[0]  # positive cosines red, negative blue, as in the plot
    from pathlib import Path

    from registry.evaluation import plots

    assert 'cmap="RdBu_r"' in Path(plots.__file__).read_text()  # the plot these colours follow


@SQLITE
def test_healthz_answers_without_sign_in_and_says_when_the_database_does_not(console, tmp_path):
    from fastapi.testclient import TestClient
    from sqlalchemy import create_engine

    from registry import Registry
    from registry.console.app import create_app

    c = console.client()
    r = c.get("/healthz", follow_redirects=False)
    assert r.status_code == 200 and r.json() == {"ok": True}
    reg = Registry.open(console.home)
    console.opened.append(reg)
    reg.engine = create_engine(f"sqlite:///{tmp_path / 'gone' / 'registry.db'}")  # a folder that is not there
    r = TestClient(create_app(reg)).get("/healthz")
    assert r.status_code == 503 and r.json()["ok"] is False
    assert r.json()["error"].startswith("database does not answer: ")
