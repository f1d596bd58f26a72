"""REST writes (register a recipe, tag, untag, describe, archive, unarchive): the CLI's roles,
four-eyes and audit, on SQLite and PostgreSQL; 401 without a token, 403 for a viewer."""

from __future__ import annotations

import json

from tests.console.test_api import one_line_error

RECIPE_YAML = """name: safe-mix
base: tiny
description: registered over REST
tags: {team: safety}
terms:
  - {vector: helpful, weight: 1.0}
  - {vector: harmless, weight: 0.25}
"""
WRITES = [  # (path, JSON body) of every write on an existing version
    ("/api/v1/vectors/helpful@v1/tag", {"tags": {"team": "safety"}}),
    ("/api/v1/vectors/helpful@v1/untag", {"keys": ["team"]}),
    ("/api/v1/vectors/helpful@v1/describe", {"description": "d"}),
    ("/api/v1/vectors/helpful@v1/archive", {"reason": "r"}),
    ("/api/v1/vectors/helpful@v1/unarchive", {}),
    ("/api/v1/recipes/mix@v1/tag", {"tags": {"team": "safety"}}),
    ("/api/v1/recipes/mix@v1/untag", {"keys": ["team"]}),
    ("/api/v1/recipes/mix@v1/describe", {"description": "d"}),
    ("/api/v1/recipes/mix@v1/archive", {}),
    ("/api/v1/recipes/mix@v1/unarchive", {}),
]
YAML = {"Content-Type": "application/yaml"}


def test_register_a_recipe_as_yaml_or_json_and_four_eyes(console):
    c = console.client()
    bob, alice = console.auth("bob"), console.auth("alice")
    r = c.post("/api/v1/recipes", content=RECIPE_YAML, headers={**bob, **YAML})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["ref"], body["created"], body["actor"]) == ("safe-mix@v1", True, "bob")
    assert body["tags"] == {"team": "safety"} and body["description"] == "registered over REST"
    # the same content again (as JSON this time) is the same version
    as_json = {
        "name": "safe-mix",
        "base": "tiny",
        "terms": [{"vector": "helpful", "weight": 1.0}, {"vector": "harmless", "weight": 0.25}],
    }
    r = c.post("/api/v1/recipes", json=as_json, headers=bob)
    assert r.status_code == 200 and r.json()["created"] is False and r.json()["ref"] == "safe-mix@v1"
    r = c.post("/api/v1/recipes", json={**as_json, "method": "ties"}, headers=bob)
    assert r.status_code == 201 and r.json()["ref"] == "safe-mix@v2"
    lib = console.reg.recipe("safe-mix@v1")
    assert lib.created_by == "bob" and [t.weight for t in lib.terms] == [1.0, 0.25]
    [added] = [e for e in console.reg.log("safe-mix@v1") if e.action == "recipe.add"]
    assert (added.actor, added.actor_source) == ("bob", "console")
    # four-eyes: bob registered it, so bob cannot approve it; alice can
    for ref in ("helpful@v1", "harmless@v1"):
        assert c.post(f"/api/v1/vectors/{ref}/approve", json={"reason": "ok"}, headers=bob).status_code == 200
    r = c.post("/api/v1/recipes/safe-mix@v1/approve", json={"reason": "mine"}, headers=bob)
    assert (
        one_line_error(r, 409) == "four-eyes rule: bob created recipe safe-mix@v1 and cannot also approve it"
    )
    r = c.post("/api/v1/recipes/safe-mix@v1/approve", json={"reason": "evals ok"}, headers=alice)
    assert r.status_code == 200 and console.reg.recipe("safe-mix@v1").status == "approved"
    # bad bodies: one line, nothing written
    count = len(console.reg.recipes())
    for content, headers, status, said in [
        ("name: [unclosed", YAML, 400, "malformed YAML at line"),
        ("name: x\nbase: tiny\nterms: []\nextra: 1\n", YAML, 400, "extra: unknown key"),
        ("- a list", YAML, 400, "a recipe is a mapping"),
        ("{bad json", {"Content-Type": "application/json"}, 400, "malformed JSON"),
        ("x", {"Content-Type": "image/png"}, 415, "send the recipe as application/yaml"),
        (RECIPE_YAML.replace("helpful", "nope"), YAML, 400, "vector not found: nope"),
    ]:
        assert said in one_line_error(
            c.post("/api/v1/recipes", content=content, headers={**bob, **headers}), status
        )
    assert len(console.reg.recipes()) == count


def test_viewer_gets_403_and_no_token_401_for_every_write(console):
    c = console.client()
    victor = console.auth("victor")
    r = c.post("/api/v1/recipes", content=RECIPE_YAML, headers={**victor, **YAML})
    assert one_line_error(r, 403) == "victor is a viewer: this needs the review right"
    for path, body in WRITES:
        assert one_line_error(c.post(path, json=body, headers=victor), 403).startswith("victor is a viewer")
        for headers in ({}, {"Authorization": "Bearer rgt_" + "x" * 43}):
            one_line_error(c.post(path, json=body, headers=headers), 401)
    one_line_error(c.post("/api/v1/recipes", content=RECIPE_YAML, headers=YAML), 401)
    assert console.reg.recipes()[0].ref == "mix@v1" and len(console.reg.recipes()) == 1
    v = console.reg.vector("helpful@v1")
    assert v.tags == [] and v.description is None and v.archived_at is None


def test_reviewer_writes_are_the_cli_writes_with_the_same_audit(console):
    c = console.client()
    bob = console.auth("bob")
    for path, body in WRITES:
        r = c.post(path, json=body, headers=bob)
        assert r.status_code == 200, (path, r.text)
        assert r.json()["actor"] == "bob"
    actions = [(e.action, e.object, e.actor, e.actor_source) for e in console.reg.log() if e.actor == "bob"]
    assert [a[0] for a in actions] == [
        "vector.tag", "vector.untag", "vector.describe", "vector.archived", "vector.unarchived",
        "recipe.tag", "recipe.untag", "recipe.describe", "recipe.archived", "recipe.unarchived",
    ]  # fmt: skip
    assert {a[3] for a in actions} == {"console"}
    # rule and state conflicts are 409, unknown refs 404, a bad tag 400
    r = c.post("/api/v1/vectors/helpful@v1/untag", json={"keys": ["team"]}, headers=bob)
    assert one_line_error(r, 404) == "tag of vector helpful@v1 not found: team"
    r = c.post("/api/v1/vectors/helpful@v1/tag", json={"tags": {"bad key": "x"}}, headers=bob)
    assert "invalid tag key" in one_line_error(r, 400)
    one_line_error(c.post("/api/v1/recipes/nope@v1/archive", json={}, headers=bob), 404)
    one_line_error(c.post("/api/v1/recipes/mix@v1/unarchive", json={}, headers=bob), 409)
    # an approved vector: archiving needs force, force needs an admin account and a policy admin
    assert c.post("/api/v1/vectors/helpful@v1/approve", json={"reason": "ok"}, headers=bob).status_code == 200
    r = c.post("/api/v1/vectors/helpful@v1/archive", json={}, headers=bob)
    assert "needs a policy admin and --force" in one_line_error(r, 409)
    r = c.post("/api/v1/vectors/helpful@v1/archive", json={"force": True}, headers=bob)
    assert one_line_error(r, 403) == "bob is a reviewer: this needs the admin right"
    r = c.post(
        "/api/v1/vectors/helpful@v1/archive",
        json={"force": True, "reason": "retired"},
        headers=console.auth("carol"),
    )
    assert r.status_code == 200 and r.json()["archived_by"] == "carol"
    assert [v["ref"] for v in c.get("/api/v1/vectors", headers=bob).json()["items"]] == ["harmless@v1"]
    assert c.get("/api/v1/vectors/helpful@v1", headers=bob).json()["archived_at"] is not None


def test_openapi_documents_the_writes(console):
    doc = console.client().get("/api/v1/openapi.json").json()
    for path, _ in WRITES:
        template = path.replace("helpful@v1", "{ref}").replace("mix@v1", "{ref}")
        assert "post" in doc["paths"][template], template
    post = doc["paths"]["/api/v1/recipes"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/yaml", "application/json"}
    params = {p["name"] for p in doc["paths"]["/api/v1/vectors"]["get"]["parameters"]}
    assert {"search", "status", "base", "tag", "archived"} <= params
    json.dumps(doc)
