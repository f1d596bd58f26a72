"""registry.ops.maintenance: verify finds damage in base files and stored arrays; gc keeps what rows use."""

from __future__ import annotations

import shutil


def test_verify_is_clean_then_names_a_damaged_array(loaded):
    assert loaded.verify() == []
    v = loaded.vector("helpful@v1")
    name = v.tensors[0].name
    folder = loaded.store.path / "data" / v.store_key / name
    chunk = next(p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "zarr.json")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    problems = loaded.verify()
    assert problems and all(p.startswith("vector helpful@v1 (base tiny): array ") for p in problems)
    assert any(name in p for p in problems)


def test_verify_names_a_changed_base_file(loaded, tmp_path):
    b = loaded.base("tiny")
    config = tmp_path / "config.json"
    shutil.copy(f"{b.path}/config.json", config)
    try:
        with open(f"{b.path}/config.json", "a") as f:
            f.write(" ")
        problems = loaded.verify()
        assert any(p.startswith("base tiny: ") and "config.json" in p for p in problems), problems
    finally:
        shutil.copy(config, f"{b.path}/config.json")


def test_gc_removes_only_unreferenced_groups(loaded):
    keys = set(loaded.store.group_keys())
    stray = loaded.store.path / "data" / "stray-group"
    stray.mkdir(parents=True)
    (stray / "zarr.json").write_text("{}")
    assert loaded.orphans() == ["stray-group"]
    assert loaded.gc(grace_seconds=0, dry_run=True)["removed"] == ["stray-group"]
    assert stray.exists()
    report = loaded.gc(grace_seconds=0)
    assert report["removed"] == ["stray-group"] and not stray.exists()
    assert set(loaded.store.group_keys()) == keys
