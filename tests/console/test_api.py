"""REST API under /api/v1: every status code (200, 401, 403, 404, 409, 422) for every role, on
SQLite and PostgreSQL (the `reg` fixture runs each test on both)."""

from __future__ import annotations

import pytest

from tests.console.conftest import ROLES

READS = ["/api/v1/bases", "/api/v1/bases/tiny", "/api/v1/vectors", "/api/v1/vectors/helpful@v1",
         "/api/v1/recipes", "/api/v1/recipes/mix", "/api/v1/runs", "/api/v1/audit", "/api/v1/me"]  # fmt: skip


def one_line_error(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert list(body) == ["error"] and "\n" not in body["error"] and body["error"]
    return body["error"]


def test_reads_for_every_role_match_the_library(console):
    c = console.client()
    runs = {v.run_id for v in console.reg.vectors()}
    for name, role in ROLES.items():
        h = console.auth(name)
        assert c.get("/api/v1/me", headers=h).json() == {"name": name, "role": role}
        for path in READS:
            assert c.get(path, headers=h).status_code == 200, path
        vecs = c.get("/api/v1/vectors", headers=h).json()
        assert vecs["total"] == 2
        assert {(v["ref"], v["digest"], v["status"]) for v in vecs["items"]} == {
            (v.ref, v.digest, v.status) for v in console.reg.vectors()
        }
        shown = c.get("/api/v1/vectors/harmless@v1", headers=h).json()
        assert shown["lineage"]["id"] == console.reg.vector("harmless").run_id
        assert set(shown["interference"]["cosines"]) == {"helpful@v1"}
        rec = c.get("/api/v1/recipes/mix@v1", headers=h).json()
        assert [(t["vector"], t["weight"]) for t in rec["terms"]] == [
            ("helpful@v1", 1.0),
            ("harmless@v1", 0.5),
        ]
        assert {r["id"] for r in c.get("/api/v1/runs", headers=h).json()["items"]} == runs
        helpful_run = console.reg.vector("helpful").run_id
        run = c.get(f"/api/v1/runs/{helpful_run}", headers=h).json()
        assert (run["id"], run["kind"], run["status"]) == (helpful_run, "import", "succeeded")
        assert c.get("/api/v1/bases/tiny", headers=h).json()["digest"] == console.reg.base("tiny").digest
    # filters and search
    h = console.auth("victor")
    assert [v["ref"] for v in c.get("/api/v1/vectors?q=harm", headers=h).json()["items"]] == ["harmless@v1"]
    assert c.get("/api/v1/vectors?status=approved", headers=h).json()["total"] == 0
    assert c.get("/api/v1/vectors?size=1&page=2", headers=h).json()["items"][0]["ref"] == "helpful@v1"


def test_401_without_a_valid_token(console):
    from registry.console.accounts import remove_user

    c = console.client()
    posts = ["/api/v1/vectors/helpful@v1/approve", "/api/v1/recipes/mix@v1/deprecate"]
    for headers in ({}, {"Authorization": "Bearer rgt_" + "x" * 43}, {"Authorization": "Basic Ym9iOmJvYg=="}):
        for path in READS:
            assert "token" in one_line_error(c.get(path, headers=headers), 401)
        for path in posts:
            one_line_error(c.post(path, json={"reason": "r"}, headers=headers), 401)
    assert c.get("/api/v1/me", headers={}).headers["www-authenticate"] == "Bearer"
    # a removed account's token stops working at once, for every role
    for name in ROLES:
        remove_user(console.reg, name)
        assert (
            one_line_error(c.get("/api/v1/me", headers=console.auth(name)), 401) == "invalid or revoked token"
        )
    assert console.reg.vector("helpful").status == "draft"


def test_403_for_a_role_without_the_right(console):
    c = console.client()
    for kind, ref in (("vectors", "helpful@v1"), ("recipes", "mix@v1")):
        for verb in ("approve", "deprecate"):
            r = c.post(
                f"/api/v1/{kind}/{ref}/{verb}", json={"reason": "looks fine"}, headers=console.auth("victor")
            )
            assert one_line_error(r, 403) == "victor is a viewer: this needs the review right"
    r = c.post("/api/v1/recipes/mix@v1/alias", json={"alias": "staging"}, headers=console.auth("victor"))
    one_line_error(r, 403)
    # forcing an alias onto an unapproved version is an admin's right, not a reviewer's
    r = c.post(
        "/api/v1/recipes/mix@v1/alias", json={"alias": "staging", "force": True}, headers=console.auth("bob")
    )
    assert one_line_error(r, 403) == "bob is a reviewer: this needs the admin right"
    assert console.reg.vector("helpful").status == "draft" and console.reg.recipe("mix").status == "draft"
    assert console.reg.aliases() == []
    r = c.post(
        "/api/v1/recipes/mix@v1/alias",
        json={"alias": "staging", "force": True},
        headers=console.auth("carol"),
    )
    assert r.status_code == 200 and r.json() == {"alias": "mix@staging", "to": "mix@v1", "actor": "carol"}
    assert [(a.alias, a.recipe.ref) for a in console.reg.aliases()] == [("staging", "mix@v1")]


def test_404_for_unknown_refs_for_every_role(console):
    c = console.client()
    for name in ROLES:
        h = console.auth(name)
        assert one_line_error(c.get("/api/v1/vectors/nope@v1", headers=h), 404) == "vector not found: nope@v1"
        assert (
            one_line_error(c.get("/api/v1/vectors/helpful@v9", headers=h), 404)
            == "vector not found: helpful@v9"
        )
        one_line_error(c.get("/api/v1/recipes/mix@v7", headers=h), 404)
        one_line_error(c.get("/api/v1/recipes/mix@prod", headers=h), 404)
        one_line_error(c.get("/api/v1/bases/nope", headers=h), 404)
        one_line_error(c.get("/api/v1/runs/999999", headers=h), 404)
        one_line_error(c.get("/api/v1/nothing-here", headers=h), 404)
        if name != "victor":  # a reviewer's write on an unknown ref: 404, nothing written
            one_line_error(c.post("/api/v1/vectors/nope@v1/approve", json={"reason": "r"}, headers=h), 404)
            one_line_error(c.post("/api/v1/recipes/nope@v1/deprecate", json={"reason": "r"}, headers=h), 404)


def test_409_four_eyes_state_and_protected_alias(console):
    c = console.client()
    alice, bob, carol = (console.auth(n) for n in ("alice", "bob", "carol"))
    # four-eyes: alice created everything; the governance code refuses and audits it
    r = c.post("/api/v1/vectors/helpful@v1/approve", json={"reason": "mine"}, headers=alice)
    assert (
        one_line_error(r, 409) == "four-eyes rule: alice created vector helpful@v1 and cannot also approve it"
    )
    refused = [e for e in console.reg.log("helpful@v1") if e.action == "refused.vector.approved"]
    assert [(e.actor, e.details["actor"]) for e in refused] == [("alice", "alice")]
    # a recipe whose vectors are drafts cannot be approved, whoever asks (reviewer or admin)
    for h in (bob, carol):
        r = c.post("/api/v1/recipes/mix@v1/approve", json={"reason": "ok"}, headers=h)
        assert "uses vectors that are not approved" in one_line_error(r, 409)
    # an alias needs an approved version unless forced
    r = c.post("/api/v1/recipes/mix@v1/alias", json={"alias": "staging"}, headers=bob)
    assert "is draft: an alias may point only at an approved version" in one_line_error(r, 409)
    for ref in ("helpful@v1", "harmless@v1"):
        assert (
            c.post(f"/api/v1/vectors/{ref}/approve", json={"reason": "eval ok"}, headers=bob).status_code
            == 200
        )
    # state: approved cannot be approved again
    r = c.post("/api/v1/vectors/helpful@v1/approve", json={"reason": "again"}, headers=carol)
    assert one_line_error(r, 409) == "vector helpful@v1 is approved; it cannot become approved"
    assert c.post("/api/v1/recipes/mix@v1/approve", json={"reason": "ok"}, headers=bob).status_code == 200
    # protected alias: only carol moves prod (admin rights do not matter, the approver list does)
    r = c.post("/api/v1/recipes/mix@v1/alias", json={"alias": "prod"}, headers=bob)
    assert one_line_error(r, 409) == "alias prod is protected: only carol may move it, not bob"
    assert c.post("/api/v1/recipes/mix@v1/alias", json={"alias": "prod"}, headers=carol).status_code == 200
    assert console.reg.recipe("mix@prod").ref == "mix@v1"
    # deprecated is final
    assert (
        c.post("/api/v1/recipes/mix@v1/deprecate", json={"reason": "old"}, headers=alice).status_code == 200
    )
    r = c.post("/api/v1/recipes/mix@v1/deprecate", json={"reason": "old"}, headers=bob)
    assert one_line_error(r, 409) == "recipe mix@v1 is deprecated; it cannot become deprecated"


def test_200_approval_is_the_governance_write_with_the_account_as_actor(console):
    c = console.client()
    r = c.post(
        "/api/v1/vectors/helpful@v1/approve",
        json={"reason": "eval 2026-11 passed"},
        headers=console.auth("bob"),
    )
    assert r.status_code == 200
    assert r.json() == {
        "ref": "helpful@v1",
        "kind": "vector",
        "status": "approved",
        "reason": "eval 2026-11 passed",
        "actor": "bob",
    }
    v = console.reg.vector("helpful@v1")
    assert (v.status, v.status_actor, v.status_reason) == ("approved", "bob", "eval 2026-11 passed")
    event = [e for e in console.reg.log("helpful@v1") if e.action == "vector.approved"]
    assert [(e.actor, e.details) for e in event] == [
        ("bob", {"reason": "eval 2026-11 passed", "from": "draft"})
    ]
    # the same write through the library (what the CLI calls) records the same event shape
    console.reg.actor = "carol"
    console.reg.deprecate("harmless@v1", "superseded", kind="vector")
    cli_event = next(e for e in console.reg.log("harmless@v1") if e.action == "vector.deprecated")
    r = c.post(
        "/api/v1/vectors/helpful@v1/deprecate", json={"reason": "superseded"}, headers=console.auth("carol")
    )
    api_event = next(e for e in console.reg.log("helpful@v1") if e.action == "vector.deprecated")
    assert (api_event.actor, set(api_event.details)) == (cli_event.actor, set(cli_event.details))
    # audit filters over the API
    got = c.get("/api/v1/audit?actor=bob&action=vector.", headers=console.auth("victor")).json()["items"]
    assert [(e["actor"], e["action"], e["object"]) for e in got] == [("bob", "vector.approved", "helpful@v1")]


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 2001}])
def test_422_a_reason_is_required(console, body):
    c = console.client()
    r = c.post("/api/v1/vectors/helpful@v1/approve", json=body, headers=console.auth("bob"))
    assert "reason" in one_line_error(r, 422)
    assert console.reg.vector("helpful").status == "draft"


def test_openapi_document_lists_the_routes(console):
    doc = console.client().get("/api/v1/openapi.json").json()
    paths = set(doc["paths"])
    assert {"/api/v1/vectors/{ref}/approve", "/api/v1/recipes/{ref}/deprecate", "/api/v1/recipes/{ref}/alias",
            "/api/v1/runs/{run_id}", "/api/v1/bases"} <= paths  # fmt: skip
    assert not any(p.startswith(("/login", "/queue")) for p in paths)
