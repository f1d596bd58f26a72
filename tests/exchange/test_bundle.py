"""Bundles: export → import into an empty registry → byte-identical materialization."""

from __future__ import annotations

import json
import tarfile

import pytest


@pytest.fixture
def source(loaded, tmp_path):
    loaded.add_recipe(
        {
            "name": "mix",
            "base": "tiny",
            "terms": [{"vector": "helpful", "weight": 1.0}, {"vector": "harmless", "weight": -0.5}],
        }
    )
    for v in ("helpful", "harmless"):
        loaded.approve(v, "reviewed", kind="vector")
    loaded.approve("mix@v1", "shipped")
    return loaded


def test_round_trip_is_byte_identical(source, models, cli, tmp_path):
    from registry import Registry

    bundle = tmp_path / "release.bundle"
    code, out, err = cli("--json", "export", "mix@v1", "--out", bundle)
    assert code == 0, err
    assert json.loads(out)["vectors"] == ["helpful@v1", "harmless@v1"]
    target = Registry.init(tmp_path / "target")
    report = target.__class__.open(tmp_path / "target")
    from registry.exchange.bundle import import_bundle

    with pytest.raises(Exception, match=r"base not found: tiny \(pass --base-path tiny=DIR"):
        import_bundle(report, bundle)
    assert report.store.group_keys() == [] and report.vectors() == []
    result = import_bundle(report, bundle, {"tiny": str(models["base"])})
    assert result == {"vectors": ["helpful@v1", "harmless@v1"], "recipes": ["mix@v1"], "notes": 0}
    # unsigned approvals do not survive the trip: they land as draft, the source status noted
    assert report.recipe("mix").status == "draft"
    assert "the bundle said approved" in report.recipe("mix").status_reason
    assert report.vector("helpful").status == "draft"
    assert report.vector("helpful").run.plugin is None and report.vector("helpful").run.sources[
        "bundle"
    ] == str(bundle)
    a = source.materialize("mix", tmp_path / "a")
    b = report.materialize("mix@v1", tmp_path / "b")
    assert a.output_digest == b.output_digest
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "model.safetensors"
    ).read_bytes()
    assert report.verify() == []
    # importing again is a no-op
    assert import_bundle(report, bundle) == {"vectors": [], "recipes": [], "notes": 0}


def test_conflicts_and_tampering_are_refused(source, models, tmp_path):
    from registry import Registry
    from registry.errors import AlreadyExists, IntegrityError
    from registry.exchange.bundle import export_bundle, import_bundle

    bundle = tmp_path / "b.tar"
    export_bundle(source, ["mix"], bundle)
    target = Registry.init(tmp_path / "t")
    target.add_base("tiny", str(models["base"]))
    target.import_vector("helpful", "tiny", models["plus2"])  # another helpful@v1
    with pytest.raises(AlreadyExists, match="vector helpful@v1 of base tiny exists here with other data"):
        import_bundle(target, bundle)
    assert [v.ref for v in target.vectors()] == ["helpful@v1"] and len(target.store.group_keys()) == 1

    # one flipped byte inside a chunk of the bundle
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(bundle) as src, tarfile.open(tampered, "w") as dst:
        flipped = False
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            if data is not None and "/c." in m.name and not flipped:
                data = bytearray(data)
                data[len(data) // 2] ^= 0x01
                data, flipped = bytes(data), True
            import io

            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    clean = Registry.init(tmp_path / "clean")
    with pytest.raises(IntegrityError, match=r"cannot be decoded|sha256 mismatch"):
        import_bundle(clean, tampered, {"tiny": str(models["base"])})
    assert clean.vectors() == [] and clean.store.group_keys() == []
