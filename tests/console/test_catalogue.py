"""Tags, descriptions and list filters: the CLI, the REST API, the console catalogue and the
library answer every filter alike (one catalogue.Filter), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re

from tests.console.conftest import sign_in

FILTERS = [  # (CLI options, REST / console query parameters)
    ([], {}),
    (["--tag", "team=safety"], {"tag": ["team=safety"]}),
    (["--tag", "team=safety", "--tag", "stage=canary"], {"tag": ["team=safety", "stage=canary"]}),
    (["--search", "HARMFUL"], {"search": "HARMFUL"}),
    (["--search", "safety"], {"search": "safety"}),
    (["--search", "mi"], {"search": "mi"}),
    (["--status", "approved"], {"status": "approved"}),
    (["--base", "tiny", "--status", "draft"], {"base": "tiny", "status": "draft"}),
    (["--archived"], {"archived": "only"}),
    (["--all", "--tag", "team=safety"], {"archived": "all", "tag": ["team=safety"]}),
    (["--search", "100%_"], {"search": "100%_"}),  # LIKE wildcards are plain text
]


def _expected(rows: dict[str, dict], cli: list[str]) -> set[str]:
    """The filter computed by hand over a plain description of every version."""
    opts = {"tags": []}
    it = iter(cli)
    for a in it:
        if a == "--tag":
            opts["tags"].append(tuple(next(it).split("=", 1)))
        elif a in ("--archived", "--all"):
            opts["archived"] = a
        else:
            opts[a.lstrip("-")] = next(it)
    out = set()
    for ref, r in rows.items():
        if opts.get("archived") == "--archived" and not r["archived"]:
            continue
        if "archived" not in opts and r["archived"]:
            continue
        if "status" in opts and r["status"] != opts["status"]:
            continue
        if any(r["tags"].get(k) != v for k, v in opts["tags"]):
            continue
        if "search" in opts:
            hay = [ref.split("@")[0], r.get("description") or "", *r["tags"].values()]
            if not any(opts["search"].lower() in h.lower() for h in hay):
                continue
        out.add(ref)
    return out


def _console_refs(html: str, kind: str) -> set[str]:
    table = html.split(f'<table id="{kind}">', 1)[1].split("</table>", 1)[0]
    return set(re.findall(rf'href="/{kind}/([^"?]+)', table))


def test_tags_and_filters_agree_in_cli_rest_console_and_library(console, cli, models):
    from registry.db.filters import Filter

    reg = console.reg
    reg.actor = "alice"
    reg.import_vector("helpful", "tiny", models["plus2"], models["plus"])  # helpful@v2
    reg.actor = "tester"
    c = console.client()
    bob = console.auth("bob")
    # tags and descriptions through each path
    reg.tag("helpful@v1", {"team": "safety", "stage": "canary"}, kind="vector")
    assert cli("tag", "--vector", "harmless@v1", "team=safety")[0] == 0
    assert cli("describe", "--vector", "harmless@v1", "Refuses harmful requests")[0] == 0
    r = c.post("/api/v1/recipes/mix@v1/tag", json={"tags": {"team": "Safety-Platform"}}, headers=bob)
    assert r.status_code == 200 and r.json()["tags"] == {"team": "Safety-Platform"}
    r = c.post("/api/v1/vectors/helpful@v2/describe", json={"description": "100%_ recall"}, headers=bob)
    assert r.status_code == 200 and r.json()["description"] == "100%_ recall"
    reg.tag("helpful@v2", {"team": "safety"}, kind="vector")
    reg.approve("helpful@v1", "eval ok", kind="vector")  # alice created it; tester approves
    reg.archive("helpful@v2", kind="vector", reason="superseded")
    vectors = {
        "helpful@v1": {
            "status": "approved",
            "tags": {"team": "safety", "stage": "canary"},
            "archived": False,
        },
        "harmless@v1": {
            "status": "draft",
            "tags": {"team": "safety"},
            "description": "Refuses harmful requests",
            "archived": False,
        },
        "helpful@v2": {
            "status": "draft",
            "tags": {"team": "safety"},
            "description": "100%_ recall",
            "archived": True,
        },
    }
    recipes = {"mix@v1": {"status": "draft", "tags": {"team": "Safety-Platform"}, "archived": False}}
    sign_in(c, "victor")
    victor = console.auth("victor")
    seen_nonempty = 0
    for options, params in FILTERS:
        want_v, want_r = _expected(vectors, options), _expected(recipes, options)
        seen_nonempty += bool(want_v) + bool(want_r)
        code, out, err = cli("vector", "list", "--json", *options)
        assert code == 0, err
        assert {v["ref"] for v in json.loads(out)} == want_v, options
        code, out, err = cli("recipe", "list", "--json", *options)
        assert code == 0, err
        assert {v["ref"] for v in json.loads(out)} == want_r, options
        rest_v = c.get("/api/v1/vectors", params=params, headers=victor).json()
        assert {v["ref"] for v in rest_v["items"]} == want_v and rest_v["total"] == len(want_v), params
        rest_r = c.get("/api/v1/recipes", params=params, headers=victor).json()
        assert {v["ref"] for v in rest_r["items"]} == want_r, params
        q = {**params, "q": params.get("search", "")}
        q.pop("search", None)
        html = c.get("/", params=q).text
        assert _console_refs(html, "vectors") == want_v and _console_refs(html, "recipes") == want_r, params
        f = Filter.parse(params.get("status"), params.get("base"), params.get("tag", []), params.get("search"),
                         params.get("archived", "hide"))  # fmt: skip
        assert {v.ref for v in reg.vectors(filter=f)} == want_v
        assert {r.ref for r in reg.recipes(f)} == want_r
    assert seen_nonempty >= 12  # the filters select something, not only empty lists
    # tags and descriptions in show, REST show and the console page
    code, out, _ = cli("vector", "show", "harmless@v1", "--json")
    shown = json.loads(out)
    assert (shown["tags"], shown["description"]) == ({"team": "safety"}, "Refuses harmful requests")
    assert c.get("/api/v1/recipes/mix@v1", headers=victor).json()["tags"] == {"team": "Safety-Platform"}
    page = c.get("/vectors/harmless@v1").text
    assert '<span class="tag">team=safety</span>' in page and "Refuses harmful requests" in page
    assert 'id="archived"' in c.get("/vectors/helpful@v2").text
    # every change is audited with what was there before
    events = [(e.action, e.actor, e.details.get("previous")) for e in reg.log("harmless@v1")]
    assert ("vector.tag", "tester", {}) in events and ("vector.describe", "tester", None) in events
    [tagged] = [e for e in reg.log("mix@v1") if e.action == "recipe.tag"]
    assert (tagged.actor, tagged.actor_source, tagged.details["set"]) == (
        "bob",
        "console",
        {"team": "Safety-Platform"},
    )


def test_retagging_untagging_and_bad_input(loaded, cli):
    reg = loaded
    reg.tag("helpful", {"team": "a"}, kind="vector")
    assert {t.key: t.value for t in reg.tag("helpful", {"team": "b"}, kind="vector").tags} == {"team": "b"}
    code, out, err = cli("--json", "untag", "--vector", "helpful@v1", "team")
    assert code == 0 and json.loads(out)["tags"] == {}
    before = len(reg.log())
    for args, message in [
        (("tag", "--vector", "helpful@v1", "bad key=x"), "invalid tag key 'bad key'"),
        (("tag", "--vector", "helpful@v1", "novalue"), "tag 'novalue': write it as KEY=VALUE"),
        (("tag", "--vector", "helpful@v1", "k=a\tb"), "no control characters"),
        (("tag", "--vector", "helpful@v1", "k=" + "x" * 257), "a value is 1 to 256 characters"),
        (("untag", "--vector", "helpful@v1", "team"), "tag of vector helpful@v1 not found: team"),
        (("tag", "--vector", "nope@v1", "k=v"), "vector not found: nope@v1"),
        (("describe", "--vector", "helpful@v1", "x" * 4001), "description too long"),
        (("vector", "list", "--tag", "team"), "write it as KEY=VALUE"),
        (("recipe", "list", "--base", "nope"), "base not found: nope"),
        (("recipe", "list", "--search", "x" * 201), "search text too long"),
    ]:
        code, out, err = cli(*args)
        assert code != 0 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert len(reg.log()) == before  # nothing half-written, nothing audited
    assert reg.vector("helpful").tags == [] and reg.vector("helpful").description is None
    # an empty description clears it
    reg.describe("helpful", "x", kind="vector")
    assert cli("describe", "--vector", "helpful@v1", "")[0] == 0
    assert reg.vector("helpful").description is None


def test_recipe_file_description_and_tags_reach_show_lineage_and_card(loaded, cli, tmp_path):
    f = tmp_path / "mix.yaml"
    f.write_text(
        "name: mix\nbase: tiny\ndescription: 'Helpful *and* harmless <b>mix</b>'\n"
        "tags: {team: safety, ticket: 'PV-42'}\nterms:\n  - {vector: helpful, weight: 1.0}\n"
    )
    code, out, err = cli("--json", "recipe", "add", f)
    assert code == 0, err
    added = json.loads(out)
    assert added["tags"] == {"team": "safety", "ticket": "PV-42"} and added["description"].startswith(
        "Helpful"
    )
    # metadata is not content: the same terms with another description is the same version
    f.write_text(f.read_text().replace("Helpful", "Other"))
    code, out, _ = cli("--json", "recipe", "add", f)
    assert json.loads(out)["created"] is False and json.loads(out)["ref"] == "mix@v1"
    code, out, _ = cli("--json", "recipe", "show", "mix")
    assert json.loads(out)["tags"] == {"team": "safety", "ticket": "PV-42"}
    tree = loaded.lineage("mix")
    [node] = tree["runs"][0]["vectors"][0]["recipes"]
    assert node["description"] == "Helpful *and* harmless <b>mix</b>" and node["tags"]["ticket"] == "PV-42"
    loaded.materialize("mix", tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "- Description: Helpful \\*and\\* harmless \\<b\\>mix\\</b\\>" in card  # inert text
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: m2\nbase: tiny\ntags: {team: [1, 2]}\nterms:\n  - {vector: helpful, weight: 1.0}\n")
    code, _, err = cli("recipe", "add", bad)
    assert code != 0 and "tags" in err and len(err.strip().splitlines()) == 1


def test_rest_refuses_a_bad_filter_in_one_line(console):
    c = console.client()
    h = console.auth("victor")
    for params in ({"status": "bogus"}, {"tag": "nokey"}, {"archived": "bogus"}):
        r = c.get("/api/v1/vectors", params=params, headers=h)
        assert r.status_code == 422 and list(r.json()) == ["error"], (params, r.text)
