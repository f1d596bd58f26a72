"""gc of archived vectors: it frees the bytes it reports (the store measured before and after),
never data a live recipe or a lock needs without --force by a policy admin, and verify passes after."""

from __future__ import annotations

import json

import pytest

from registry.errors import DataCollected, GovernanceRefused


def store_bytes(reg) -> int:
    return sum(p.stat().st_size for p in (reg.store.path / "data").rglob("*") if p.is_file())


def group_bytes(reg, ref: str) -> int:
    folder = reg.store.path / "data" / reg.vector(ref).store_key
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_gc_frees_what_it_says_and_keeps_what_live_recipes_need(loaded, cli, models, tmp_path):
    reg = loaded
    reg.import_vector("spare", "tiny", models["plus2"], models["plus"])
    reg.add_recipe({"name": "keep", "base": "tiny", "terms": [{"vector": "harmless", "weight": 1.0}]})
    for ref in ("helpful@v1", "harmless@v1", "spare@v1"):
        reg.archive(ref, kind="vector", reason="cleanup")
    expected = group_bytes(reg, "helpful@v1") + group_bytes(reg, "spare@v1")
    before = store_bytes(reg)
    code, out, err = cli("--json", "gc", "--dry-run")
    assert code == 0, err
    dry = json.loads(out)
    assert dry["freed_bytes"] == expected and store_bytes(reg) == before  # nothing removed
    assert {a["ref"] for a in dry["archived"]} == {"helpful@v1", "spare@v1"}
    assert dry["kept"] == [{"ref": "harmless@v1", "base": "tiny", "why": ["used by live recipe(s) keep@v1"]}]
    code, out, err = cli("--json", "gc")
    assert code == 0, err
    report = json.loads(out)
    assert report["freed_bytes"] == expected == before - store_bytes(reg)
    assert sorted((a["ref"], a["bytes"]) for a in report["archived"]) == sorted(
        (a["ref"], a["bytes"]) for a in dry["archived"]
    )
    assert reg.verify() == [] and reg.orphans() == []
    code, out, _ = cli("--json", "verify")
    assert code == 0 and json.loads(out)["ok"] is True
    # the rows stay: exact refs, digests and lineage still read; the data is gone, said plainly
    v = reg.vector("helpful@v1")
    assert v.collected_at is not None and len(v.tensors) > 0
    assert reg.lineage("helpful@v1")["runs"][0]["vectors"][0]["ref"] == "helpful@v1"
    code, out, _ = cli("--json", "vector", "show", "helpful@v1")
    assert json.loads(out)["collected_at"] is not None
    with pytest.raises(DataCollected, match="removed the store data"):
        reg.compare("helpful@v1", "harmless@v1")
    with pytest.raises(DataCollected, match="cannot come back"):
        reg.unarchive("helpful@v1", kind="vector")
    code, _, err = cli("export", "spare@v1", "--out", tmp_path / "b.bundle")
    assert code != 0 and "removed their archived data" in err
    # the vector a live recipe uses is still whole and materializes
    reg.materialize("keep", tmp_path / "keep")
    collected = [e for e in reg.log() if e.action == "vector.collected"]
    assert sorted(e.object for e in collected) == ["helpful@v1", "spare@v1"]
    assert sum(e.details["bytes"] for e in collected) == expected
    [gc_event] = [e for e in reg.log() if e.action == "gc"]
    assert gc_event.details["freed_bytes"] == expected
    # once the recipe is archived too (materialized: a policy admin's --force), nothing live
    # needs harmless; its lock still names it, so only gc --force takes it
    reg.archive("keep@v1", force=True)
    size = group_bytes(reg, "harmless@v1")
    assert reg.gc()["kept"][0]["why"][0].startswith("named by 1 materialization lock(s)")
    assert reg.gc(force=True)["freed_bytes"] == size
    assert reg.verify() == []


def test_data_a_lock_names_is_collected_only_by_an_admin_with_force(loaded, tmp_path):
    reg = loaded
    reg.add_recipe({"name": "shipped", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    reg.materialize("shipped", tmp_path / "out")
    reg.archive("shipped@v1", force=True)  # tester: the registry's creator, a policy admin
    reg.archive("helpful@v1", kind="vector", force=True)
    size, before = group_bytes(reg, "helpful@v1"), store_bytes(reg)
    report = reg.gc()
    assert report["archived"] == [] and report["freed_bytes"] == 0 and store_bytes(reg) == before
    [kept] = report["kept"]
    assert kept["ref"] == "helpful@v1" and kept["why"][0].startswith("named by 1 materialization lock(s)")
    reg.actor = "bob"
    with pytest.raises(GovernanceRefused, match="only a policy admin"):
        reg.gc(force=True)
    assert store_bytes(reg) == before and reg.vector("helpful@v1").collected_at is None
    assert [e.action for e in reg.log() if e.actor == "bob"] == ["refused.gc"]
    reg.actor = "tester"
    report = reg.gc(force=True)
    assert report["archived"] == [{"ref": "helpful@v1", "base": "tiny", "bytes": size, "forced": True}]
    assert before - store_bytes(reg) == size == report["freed_bytes"]
    assert reg.verify() == []
    [event] = [e for e in reg.log("helpful@v1") if e.action == "vector.collected"]
    assert event.details["forced"] is True and "named by 1" in event.details["overridden"][0]
    # the lock still reads as lineage; materializing it again says why it cannot
    assert reg.lineage_of_lock(tmp_path / "out" / "registry-lock.json")["ref"]
    with pytest.raises(
        DataCollected, match="helpful@v1 was archived and `registry gc` removed its store data"
    ):
        reg.materialize("shipped@v1", tmp_path / "again", reuse=False)
    assert not (tmp_path / "again").exists()
