"""Archiving: hidden from lists and bare names, NAME@vN still resolves (locks and lineage read);
approved, aliased or materialized versions need a policy admin and --force; every step audited."""

from __future__ import annotations

import json

import pytest

from registry.errors import GovernanceRefused, InvalidRecipe, InvalidTransition, NotFound


def test_archive_hides_from_lists_and_bare_names_but_exact_refs_resolve(loaded, cli, models):
    reg = loaded
    reg.import_vector("helpful", "tiny", models["plus2"], models["plus"])  # helpful@v2
    assert reg.vector("helpful").ref == "helpful@v2"
    code, out, err = cli("--json", "archive", "--vector", "helpful@v2", "--reason", "superseded")
    assert code == 0, err
    assert json.loads(out)["archived_by"] == "tester"
    assert reg.vector("helpful").ref == "helpful@v1"  # the bare name skips the archived version
    assert reg.vector("helpful@v2").archived_at is not None  # the exact one still resolves
    assert [v.ref for v in reg.vectors()] == ["harmless@v1", "helpful@v1"]
    code, out, _ = cli("--json", "vector", "list")  # the fast listing hides it too
    assert [v["ref"] for v in json.loads(out)] == ["harmless@v1", "helpful@v1"]
    code, out, _ = cli("--json", "vector", "show", "helpful")  # the fast show skips it too
    assert json.loads(out)["ref"] == "helpful@v1"
    code, out, _ = cli("--json", "vector", "show", "helpful@v2")
    assert json.loads(out)["archived_by"] == "tester"
    code, out, _ = cli("--json", "vector", "list", "--archived")
    assert [v["ref"] for v in json.loads(out)] == ["helpful@v2"]
    code, out, _ = cli("--json", "vector", "list", "--all")
    assert len(json.loads(out)) == 3
    reg.archive("helpful@v1", kind="vector")
    with pytest.raises(NotFound, match="every version is deprecated or archived; pin one as NAME@vN"):
        reg.vector("helpful")
    # a new recipe cannot use an archived vector, even pinned
    with pytest.raises(InvalidRecipe, match="helpful@v1 is archived"):
        reg.add_recipe({"name": "m", "base": "tiny", "terms": [{"vector": "helpful@v1", "weight": 1.0}]})
    reg.unarchive("helpful@v1", kind="vector", reason="still needed")
    assert reg.vector("helpful").ref == "helpful@v1"
    with pytest.raises(InvalidTransition, match="is not archived"):
        reg.unarchive("helpful@v1", kind="vector")
    with pytest.raises(InvalidTransition, match="already archived"):
        reg.archive("helpful@v2", kind="vector")
    with pytest.raises(InvalidTransition, match="exact version NAME@vN"):
        reg.archive("helpful", kind="vector")
    actions = [(e.action, e.object, e.details.get("reason")) for e in reg.log("helpful")]
    assert ("vector.archived", "helpful@v2", "superseded") in actions
    assert ("vector.unarchived", "helpful@v1", "still needed") in actions


def test_recipes_archive_and_a_lock_and_lineage_still_read(loaded, cli, tmp_path):
    reg = loaded
    reg.add_recipe({"name": "mix", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    reg.add_recipe({"name": "mix", "base": "tiny", "terms": [{"vector": "helpful", "weight": 0.5}]})
    reg.archive("mix@v2")
    assert reg.recipe("mix").ref == "mix@v1" and [r.ref for r in reg.recipes()] == ["mix@v1"]
    for argv, want in ((["recipe", "show", "mix"], "mix@v1"), (["recipe", "show", "mix@v2"], "mix@v2")):
        code, out, err = cli("--json", *argv)  # the fast DB-API path agrees
        assert code == 0 and json.loads(out)["ref"] == want, err
    code, out, _ = cli("--json", "recipe", "list")
    assert [r["ref"] for r in json.loads(out)] == ["mix@v1"]
    m = reg.materialize("mix@v1", tmp_path / "out")
    # materialized: a lock names it, so only a policy admin with --force archives it
    reg.actor = "bob"
    with pytest.raises(
        GovernanceRefused, match=r"named by 1 materialization lock.*needs a policy admin and --force"
    ):
        reg.archive("mix@v1")
    with pytest.raises(GovernanceRefused, match="only a policy admin"):
        reg.archive("mix@v1", force=True)
    refused = [e.action for e in reg.log("mix@v1") if e.actor == "bob"]
    assert refused == ["refused.recipe.archived", "refused.recipe.archived"]
    reg.actor = "tester"  # the registry's creator: a policy admin
    reg.archive("mix@v1", force=True, reason="retired")
    with pytest.raises(NotFound, match="every version is archived"):
        reg.recipe("mix")
    lock = tmp_path / "out" / "registry-lock.json"
    assert reg.verify_lock(lock) == []
    tree = reg.lineage_of_lock(lock)
    assert json.dumps(tree).count("mix@v1") >= 1
    [node] = reg.lineage("mix@v1")["runs"][0]["vectors"][0]["recipes"]
    assert node["archived_at"] is not None and node["materializations"][0]["output_digest"] == m.output_digest
    [event] = [e for e in reg.log("mix@v1") if e.action == "recipe.archived"]
    assert event.details["forced"] is True and event.details["protections"][0].startswith("named by 1")


def test_approved_or_aliased_vectors_need_force(loaded):
    reg = loaded
    reg.approve("helpful", "eval ok", kind="vector")
    reg.add_recipe({"name": "mix", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    reg.approve("mix", "ok")
    reg.set_alias("mix@v1", "prod")
    reg.actor = "bob"
    with pytest.raises(GovernanceRefused) as e:
        reg.archive("helpful@v1", kind="vector")
    assert str(e.value) == (
        "vector helpful@v1: helpful@v1 is approved; behind mix@prod: archiving it needs a policy admin and --force"
    )
    with pytest.raises(GovernanceRefused, match="behind mix@prod"):
        reg.archive("mix@v1")
    reg.actor = "tester"
    v = reg.archive("helpful@v1", kind="vector", force=True)
    assert v.archived_by == "tester"
    assert reg.recipe("mix@prod").terms[0].vector.ref == "helpful@v1"  # the alias still reads


def test_downgrade_refuses_while_a_version_is_archived(loaded):
    from registry.db import engine as dbmod

    loaded.archive("harmless@v1", kind="vector")
    with pytest.raises(RuntimeError, match="1 vector version\\(s\\) are archived"):
        dbmod.downgrade(loaded.engine, "0012")
    loaded.unarchive("harmless@v1", kind="vector")
    dbmod.downgrade(loaded.engine, "0012")
    dbmod.upgrade(loaded.engine)  # the kept columns and tables are not added twice
    assert loaded.vector("harmless").archived_at is None
