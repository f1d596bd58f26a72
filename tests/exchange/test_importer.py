"""Bundle contents that are well-formed tar but wrong data (issue 24.7, 24.8, 24.12).

Each bundle here is internally consistent (digests recomputed by the attacker), so only the
importer's own checks can refuse it: partial vectors, non-finite values, absurd versions,
malformed zarr metadata; and a refused import leaves no base registered.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import google_crc32c
import numpy as np
import pytest

from registry.errors import RegistryError
from registry.storage import codec
from registry.util.digests import array_sha256, named_digest
from tests.test_security import assert_nothing_visible

NORM = "model.norm.weight"  # (64,): one chunk, "c.0"


def edit_bundle(src: Path, dst: Path, manifest=None, members=None, drop=lambda name: False) -> Path:
    """A copy with the manifest edited by `manifest(doc)` and member bytes by `members(name, data)`."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            if drop(m.name):
                continue
            data = tin.extractfile(m).read()
            if m.name == "manifest.json" and manifest is not None:
                doc = json.loads(data)
                manifest(doc)
                data = json.dumps(doc).encode()
            elif members is not None:
                data = members(m.name, data)
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
    return dst


def chunk(values: np.ndarray) -> bytes:
    body = codec.encode(values.astype(np.float32))
    return body + google_crc32c.value(body).to_bytes(4, "little")


@pytest.fixture
def vector_bundle(source, tmp_path):
    from registry.exchange.bundle import export_bundle

    path = tmp_path / "helpful.tar"
    export_bundle(source, ["helpful"], path)
    return path


def test_a_vector_holding_only_lm_head_is_refused_at_bundle_import(vector_bundle, target, victim, tmp_path):
    from registry.exchange.bundle import import_bundle

    def only_lm_head(doc):
        e = doc["vectors"][0]
        e["tensors"] = [t for t in e["tensors"] if t["name"] == "lm_head.weight"]
        e["digest"] = named_digest({t["name"]: t["sha256"] for t in e["tensors"]})  # consistent

    partial = edit_bundle(
        vector_bundle,
        tmp_path / "partial.tar",
        manifest=only_lm_head,
        drop=lambda n: n.startswith("vectors/0/model."),
    )
    with pytest.raises(
        RegistryError, match=r"bundle vector helpful@v1: lacks 20 of base tiny's 21 tensors"
    ) as e:
        import_bundle(target, partial)
    assert "\n" not in str(e.value)
    assert_nothing_visible(target, victim)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_bundle_vectors_with_nan_or_inf_are_refused(bad, vector_bundle, target, victim, tmp_path):
    from registry.exchange.bundle import import_bundle

    with tarfile.open(vector_bundle) as t:
        values = codec.decode(t.extractfile(f"vectors/0/{NORM}/c.0").read()[:-4]).copy()
    values[5] = bad
    sha = array_sha256([values])

    def fix(doc):
        e = doc["vectors"][0]
        for t in e["tensors"]:
            if t["name"] == NORM:
                t["sha256"] = sha
        e["digest"] = named_digest({t["name"]: t["sha256"] for t in e["tensors"]})

    poisoned = edit_bundle(
        vector_bundle,
        tmp_path / "poisoned.tar",
        manifest=fix,
        members=lambda name, data: chunk(values) if name == f"vectors/0/{NORM}/c.0" else data,
    )
    with pytest.raises(RegistryError, match=rf"array {NORM} holds NaN or infinite values; refused"):
        import_bundle(target, poisoned)
    assert_nothing_visible(target, victim)


def test_a_version_beyond_the_database_is_one_line(vector_bundle, target, victim, tmp_path, cli, monkeypatch):
    def huge(doc):
        doc["vectors"][0]["version"] = 2**70

    hostile = edit_bundle(vector_bundle, tmp_path / "v.tar", manifest=huge)
    monkeypatch.setenv("REGISTRY_HOME", str(target.home))
    code, out, err = cli("import-bundle", hostile)
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "version '1180591620717411303424' is not a version number" in err
    assert_nothing_visible(target, victim)


META = f"vectors/0/{NORM}/zarr.json"
MALFORMED = {
    "a JSON list": lambda meta: [],
    "no chunk_grid": lambda meta: {k: v for k, v in meta.items() if k != "chunk_grid"},
    "a codec without a name": lambda meta: {**meta, "codecs": [{"configuration": {}}, *meta["codecs"][1:]]},
    "a chunk larger than the array": lambda meta: {
        **meta,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1 << 29]}},
    },
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_zarr_json_in_a_bundle_is_one_line(case, vector_bundle, target, victim, tmp_path):
    from registry.exchange.bundle import import_bundle

    def edit(name, data):
        return json.dumps(MALFORMED[case](json.loads(data))).encode() if name == META else data

    hostile = edit_bundle(vector_bundle, tmp_path / "m.tar", members=edit)
    with pytest.raises(RegistryError, match=rf"array {NORM} has malformed metadata") as e:
        import_bundle(target, hostile)
    assert "\n" not in str(e.value)
    assert_nothing_visible(target, victim)


def test_refused_import_with_base_path_leaves_the_base_unregistered(bundle, tmp_path, models, victim):
    """The conflict is found only when the rows are written: the base must not stay behind."""
    from registry import Registry
    from registry.exchange.bundle import import_bundle

    empty = Registry.init(tmp_path / "empty")
    empty.add_base("other", str(models["other_base"]))
    empty.import_vector("v", "other", models["plus"])
    empty.add_recipe({"name": "mix", "base": "other", "terms": [{"vector": "v", "weight": 1.0}]})
    with pytest.raises(RegistryError, match="recipe mix@v1 exists here with other content"):
        import_bundle(empty, bundle, {"tiny": str(models["base"])})
    assert [b.name for b in empty.bases()] == ["other"]
    assert [v.ref for v in empty.vectors()] == ["v@v1"] and len(empty.store.group_keys()) == 1
    assert not [e for e in empty.log() if e.action == "base.add" and e.object == "tiny"]
