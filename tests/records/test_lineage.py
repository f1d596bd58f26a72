"""`registry lineage`: the tree from base to outputs, from a reference or from a lock."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from registry.errors import IntegrityError, NotFound


@pytest.fixture
def history(sqlite_reg, models, tmp_path):
    reg = sqlite_reg
    reg.import_vector("helpful", "tiny", models["plus"])
    reg.import_vector("harmless", "tiny", models["plus2"], models["minus"])
    terms = [{"vector": "helpful", "weight": 1.0}, {"vector": "harmless", "weight": 0.5}]
    reg.add_recipe({"name": "hs", "base": "tiny", "terms": terms})
    reg.add_recipe({"name": "hs", "base": "tiny", "terms": terms[:1]})
    for v in ("helpful@v1", "harmless@v1"):
        reg.approve(v, "reviewed", kind="vector")
    reg.approve("hs@v1", "reviewed")
    reg.set_alias("hs@v1", "prod")
    reg.materialize("hs@prod", tmp_path / "out")
    return reg


def test_recipe_lineage_tree_json_and_png(history, cli, tmp_path):
    tree = history.lineage("hs@prod")
    assert tree["kind"] == "recipe" and tree["base"]["name"] == "tiny"
    assert tree["base"]["digest"] == history.base("tiny").digest
    vectors = [v for run in tree["runs"] for v in run["vectors"]]
    assert sorted(v["ref"] for v in vectors) == ["harmless@v1", "helpful@v1"]
    assert all(run["kind"] == "import" for run in tree["runs"])
    recipe = vectors[0]["recipes"][0]
    assert [r["ref"] for v in vectors for r in v["recipes"]] == ["hs@v1", "hs@v1"]  # v2 is not hs@prod
    assert recipe["aliases"] == ["hs@prod"] and recipe["status"] == "approved"
    assert [(a["status"], a["actor"], a["reason"]) for a in recipe["approvals"]] == [
        ("approved", "tester", "reviewed")
    ]
    [m] = recipe["materializations"]
    assert (
        m["out_path"] == str(tmp_path / "out")
        and m["output_digest"] == history.materializations()[0].output_digest
    )
    code, out, err = cli("--json", "lineage", "hs@prod", "--plot", tmp_path / "l.png")
    assert code == 0, err
    assert json.loads(out)["runs"] == json.loads(json.dumps(tree["runs"]))
    assert (tmp_path / "l.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = cli("lineage", "hs@prod")
    assert code == 0 and "recipe hs@v1 (linear: +1·helpful@v1 +0.5·harmless@v1)  approved" in out
    assert "alias hs@prod" in out and "approved by tester" in out and str(tmp_path / "out") in out
    assert "options lossless=true" in out  # each run's recorded parameters


def test_vector_and_base_lineage(history):
    tree = history.lineage("harmless@v1")
    assert tree["kind"] == "vector"
    [run] = tree["runs"]
    assert [r["ref"] for r in run["vectors"][0]["recipes"]] == ["hs@v1"]
    assert run["sources"]  # an import records its sources
    full = history.lineage("tiny")
    refs = {r["ref"] for run in full["runs"] for v in run["vectors"] for r in v["recipes"]}
    assert full["kind"] == "base" and refs == {"hs@v1", "hs@v2"}


def test_lineage_from_a_lock_walks_upward(history, cli, tmp_path):
    lock = tmp_path / "out" / "registry-lock.json"
    tree = history.lineage_of_lock(lock)
    mat = history.materializations()[0]
    assert tree["lock"]["recipe"] == "hs@v1" and tree["lock"]["content_matches"]
    assert tree["lock"]["materialization"] == mat.id
    code, out, _ = cli("lineage", "--lock", lock)
    assert code == 0 and "recipe hs@v1" in out.splitlines()[0] and f"materialization {mat.id}" in out


def test_lineage_refusals(history, cli, tmp_path):
    with pytest.raises(NotFound, match="recipe, vector or base not found: nothing"):
        history.lineage("nothing")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(IntegrityError, match="not a registry lock file"):
        history.lineage_of_lock(bad)
    lock = json.loads((tmp_path / "out" / "registry-lock.json").read_text())
    lock["recipe"]["name"] = "elsewhere"
    bad.write_text(json.dumps(lock))
    code, _, err = cli("lineage", "--lock", bad)
    assert code == 1 and "recipe not found: elsewhere@v1" in err
    code, _, err = cli("lineage")
    assert code == 2 and "exactly one of REF or --lock" in err


def test_import_hashes_unchanged_sources_once(sqlite_reg, models, tmp_path, monkeypatch):
    """θ± files are hashed for the lineage; an unchanged file is vouched for by its stat
    fingerprint on the next import, a rewritten one is hashed again."""
    import hashlib
    import shutil

    import registry.storage.file_cache as file_cache

    plus = tmp_path / "plus"
    shutil.copytree(models["plus"], plus)
    weights = plus / "model.safetensors"
    calls = []
    real = file_cache.file_sha256
    monkeypatch.setattr(file_cache, "file_sha256", lambda p: calls.append(p) or real(p))

    def recorded(ref: str) -> str:
        [run] = sqlite_reg.lineage(ref)["runs"]
        return run["sources"]["positive"]["files"]["model.safetensors"]

    sqlite_reg.import_vector("a", "tiny", plus)
    assert calls == [weights]
    assert recorded("a@v1") == hashlib.sha256(weights.read_bytes()).hexdigest()
    sqlite_reg.import_vector("b", "tiny", plus)
    assert calls == [weights] and recorded("b@v1") == recorded("a@v1")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # the last byte of the last tensor: still a valid file, another digest
    weights.write_bytes(bytes(data))
    sqlite_reg.import_vector("c", "tiny", plus)
    assert calls == [weights, weights]
    assert recorded("c@v1") == hashlib.sha256(bytes(data)).hexdigest() != recorded("a@v1")


def test_lineage_tells_what_happened_refusals_order_and_long_lists(sqlite_reg, models, cli, tmp_path):
    """A refused approve stays refused, runs come oldest first, a long list is summarized."""
    from safetensors.numpy import load_file, save_file

    from registry.errors import GovernanceRefused

    reg = sqlite_reg
    scaled = tmp_path / "scaled"  # θ− at 0.3× the base: θ+ − θ− is inexact in float32 nearly everywhere
    shutil.copytree(models["base"], scaled)
    tensors = {k: v * np.float32(0.3) for k, v in load_file(scaled / "model.safetensors").items()}
    save_file(tensors, scaled / "model.safetensors", metadata={"format": "pt"})
    reg.import_vector("zeta", "tiny", models["plus"], scaled)  # imported first, sorts last by name
    reg.import_vector("alpha", "tiny", models["plus2"])
    reg.add_recipe({"name": "za", "base": "tiny", "terms": [{"vector": "zeta", "weight": 1.0}]})
    with pytest.raises(GovernanceRefused):
        reg.approve("za", "looks fine")

    tree = reg.lineage("tiny")
    ids = [run["id"] for run in tree["runs"]]
    assert ids == sorted(ids) and tree["runs"][0]["vectors"][0]["ref"] == "zeta@v1"
    [decision] = tree["runs"][0]["vectors"][0]["recipes"][0]["approvals"]
    assert decision["status"] == "refused" and decision["attempted"] == "approved"
    assert "not approved" in decision["reason"]
    inexact = tree["runs"][0]["params"]["inexact_tensors"]
    assert len(inexact) > 3

    code, out, err = cli("lineage", "tiny")
    assert code == 0, err
    assert "approved by" not in out
    assert "approval by tester refused at" in out
    assert out.index("vector zeta@v1") < out.index("vector alpha@v1")  # oldest run first
    assert f"inexact_tensors=[{len(inexact)} items: {', '.join(inexact[:3])}, …]" in out
    assert inexact[3] not in out
    code, out, _ = cli("--json", "lineage", "tiny")
    data = json.loads(out)
    assert data["runs"][0]["params"]["inexact_tensors"] == inexact  # JSON keeps the whole list
    assert data["runs"][0]["vectors"][0]["recipes"][0]["approvals"][0]["status"] == "refused"
