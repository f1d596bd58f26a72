"""Low-rank vectors: factors stored exactly, read as row blocks, equal to their dense form.

The dense form of a factor vector is built here independently: B·A with the elementwise
order storage.low_rank defines, written as θ+ (θ− = 0) in float32 and imported the usual way.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from registry.errors import IntegrityError
from registry.exchange.bundle import export_bundle, import_bundle
from registry.testing.factors import random_factors


def product(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """φ = B·A, one float32 multiply and one add per rank term, in order (no BLAS)."""
    acc = b[:, 0:1] * a[0:1, :]
    for j in range(1, b.shape[1]):
        acc = acc + b[:, j : j + 1] * a[j : j + 1, :]
    return acc.astype(np.float32)


def dense_folders(base: Path, factors: dict, out: Path) -> tuple[Path, Path]:
    """θ+ = φ (0 outside the factor tensors) and θ− = 0, float32, beside the base's config."""
    tensors = load_file(base / "model.safetensors")
    folders = []
    for role in ("plus", "minus"):
        d = out / role
        d.mkdir(parents=True)
        shutil.copy(base / "config.json", d / "config.json")
        values = {n: np.zeros(t.shape, np.float32) for n, t in tensors.items()}
        if role == "plus":
            values.update({n: product(b, a) for n, (b, a) in factors.items()})
        save_file(values, d / "model.safetensors", metadata={"format": "pt"})
        folders.append(d)
    return folders[0], folders[1]


@pytest.fixture
def pair(sqlite_reg, models, tmp_path):
    """The same φ twice: `low` in factor form, `dense` as a dense float32 vector."""
    factors = random_factors(models["base"])
    low = sqlite_reg.import_low_rank("low", "tiny", factors)
    plus, minus = dense_folders(models["base"], factors, tmp_path / "dense")
    dense = sqlite_reg.import_vector("dense", "tiny", plus, minus)
    return sqlite_reg, low, dense, factors


def test_factors_are_stored_exactly_and_read_as_their_product(pair):
    reg, low, _dense, factors = pair
    data = reg.store.open(low.store_key)
    name = "model.layers.1.mlp.down_proj.weight"
    b, a = data.factors(name)
    assert np.array_equal(b, factors[name][0]) and np.array_equal(a, factors[name][1])
    assert data.is_low_rank(name) and data.rank(name) == 4 and not data.is_low_rank("model.norm.weight")
    assert data.spec(name).shape == (b.shape[0], a.shape[1]) and data.read_parts(name, 0, 1) is None
    full = product(*factors[name])
    # any row block is those rows of the product, bit for bit
    for lo, hi in ((0, full.shape[0]), (3, 17), (63, 64)):
        assert np.array_equal(data.read_rows(name, lo, hi), full[lo:hi])
    arrays = sorted(reg.store.open(low.store_key).blobs.dirs(data.prefix))
    assert f"{name}.lora_A" in arrays and f"{name}.lora_B" in arrays and name not in arrays


def test_same_values_same_digest_and_bit_identical_outputs(pair, tmp_path):
    reg, low, dense, _ = pair
    assert low.digest == dense.digest and low.norm == dense.norm
    assert low.rank == 4 and dense.rank is None
    t_low = {t.name: t for t in low.tensors}
    assert t_low["model.layers.0.self_attn.q_proj.weight"].factors["rank"] == 4
    assert t_low["model.norm.weight"].factors is None
    for method, params in (
        ("linear", {}),
        ("ties", {"density": 0.3}),
        ("dare", {"drop_rate": 0.5, "seed": 7}),
        ("orthogonal", {}),
    ):
        for dtype in ("bfloat16", "float32"):
            outs = []
            for vec in ("low", "dense"):
                name = f"{method}-{dtype}-{vec}"
                reg.add_recipe(
                    {
                        "name": name,
                        "base": "tiny",
                        "method": method,
                        "parameters": params,
                        "dtype": dtype,
                        "terms": [{"vector": vec, "weight": 0.7}],
                    }
                )
                reg.materialize(name, tmp_path / name)
                outs.append((tmp_path / name / "model.safetensors").read_bytes())
            assert outs[0] == outs[1], (method, dtype)
            base = load_file(reg.base("tiny").path + "/model.safetensors")
            got = load_file(tmp_path / f"{method}-{dtype}-low" / "model.safetensors")
            assert not np.array_equal(
                got["model.layers.0.self_attn.q_proj.weight"].astype(np.float32),
                base["model.layers.0.self_attn.q_proj.weight"].astype(np.float32),
            )


def test_low_rank_vector_stores_a_fraction_of_the_dense_bytes(pair, cli):
    reg, low, dense, factors = pair
    factor_values = sum(b.size + a.size for b, a in factors.values())
    dense_values = sum(product(b, a).size for b, a in factors.values())
    assert dense_values / factor_values == pytest.approx(73728 / 8192)  # rank 4 of 32–128-wide layers
    assert low.stored_bytes < dense.stored_bytes / 3
    for ref, rank, v in (("low", 4, low), ("dense", None, dense)):
        code, out, _ = cli("--json", "vector", "show", ref)
        shown = json.loads(out)
        assert code == 0 and shown["rank"] == rank and shown["stored_bytes"] == v.stored_bytes
        assert shown["stored_bytes"] == reg.store.nbytes(v.store_key)
    code, out, _ = cli("--json", "vector", "list")
    assert {r["ref"]: r["rank"] for r in json.loads(out)} == {"dense@v1": None, "low@v1": 4}
    code, out, _ = cli("vector", "show", "low")
    assert "form: low-rank, rank 4" in out


def test_gram_of_factor_form_equals_dense_form(pair, models):
    reg, _low, _dense, factors = pair
    other = reg.import_vector("other", "tiny", models["plus"])
    vecs, g = reg.interference("tiny")
    assert [v.ref for v in vecs] == ["dense@v1", "low@v1", "other@v1"]
    cos = g.cosine()
    assert cos[0, 1] == pytest.approx(1.0, abs=1e-12)
    assert cos[1, 2] == pytest.approx(cos[0, 2], rel=1e-12, abs=1e-15)
    # and both equal an independent float64 computation
    plus, base = (
        load_file(models["plus"] / "model.safetensors"),
        load_file(models["base"] / "model.safetensors"),
    )
    names = sorted(base)
    x = np.concatenate(
        [product(*factors[n]).ravel() if n in factors else np.zeros(base[n].size) for n in names]
    )
    y = np.concatenate(
        [plus[n].astype(np.float64).ravel() - base[n].astype(np.float64).ravel() for n in names]
    )
    assert cos[1, 2] == pytest.approx(float(x @ y / np.linalg.norm(x) / np.linalg.norm(y)), abs=1e-9)
    assert other.interference["cosines"]["low@v1"]["global"] == pytest.approx(cos[1, 2], abs=1e-12)


def test_bundle_round_trip_keeps_factor_form(pair, tmp_path, models, monkeypatch):
    from registry import Registry

    reg, low, _, _ = pair
    export_bundle(reg, ["low"], tmp_path / "b.tar")
    other_home = tmp_path / "other"
    monkeypatch.setenv("REGISTRY_HOME", str(other_home))
    there = Registry.init(other_home)
    there.add_base("tiny", str(models["base"]))
    import_bundle(there, tmp_path / "b.tar")
    v = there.vector("low")
    assert v.digest == low.digest and v.rank == 4 and v.stored_bytes == low.stored_bytes
    assert {t.name: t.factors for t in v.tensors} == {t.name: t.factors for t in low.tensors}
    assert there.store.open(v.store_key).is_low_rank("model.layers.0.mlp.up_proj.weight")
    assert there.verify() == []
    there.close()


def test_bundle_with_tampered_factor_record_is_refused(pair, tmp_path, models, monkeypatch):
    import tarfile

    from registry import Registry

    reg, *_ = pair
    export_bundle(reg, ["low"], tmp_path / "b.tar")
    with tarfile.open(tmp_path / "b.tar") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    t = next(t for t in manifest["vectors"][0]["tensors"] if t["factors"])
    t["factors"]["rank"] = 2
    (tmp_path / "x" / "manifest.json").write_text(json.dumps(manifest))
    with tarfile.open(tmp_path / "bad.tar", "w") as tar:
        for p in sorted((tmp_path / "x").iterdir()):
            tar.add(p, arcname=p.name)
    monkeypatch.setenv("REGISTRY_HOME", str(tmp_path / "other"))
    there = Registry.init(tmp_path / "other")
    there.add_base("tiny", str(models["base"]))
    with pytest.raises(IntegrityError, match=f"array {t['name']} factors do not match its manifest"):
        import_bundle(there, tmp_path / "bad.tar")
    assert there.vectors() == []
    there.close()


def test_verify_catches_a_damaged_factor_array(pair, tmp_path):
    import google_crc32c

    reg, low, _, _ = pair
    name = "model.layers.0.self_attn.v_proj.weight"
    chunk = reg.store.path / "data" / low.store_key / f"{name}.lora_A" / "c.0.0"
    assert reg.verify() == []
    raw = chunk.read_bytes()
    chunk.write_bytes(raw[:-5] + bytes([raw[-5] ^ 1]) + raw[-4:])  # a flipped bit: crc32c fails
    problems = reg.verify()
    assert f"vector low@v1 (base tiny): array {name}: cannot be read" in problems[0]
    assert "crc32c mismatch" in problems[0]
    # a crc-valid forgery: the factor's values change, its digest and the product's do not match
    from registry.storage.codec import decode, encode

    body = raw[:-4]
    values = decode(body).copy()
    values[0] += 1.0
    forged = encode(values, size=values.size)
    chunk.write_bytes(forged + google_crc32c.value(forged).to_bytes(4, "little"))
    problems = reg.verify()
    assert f"vector low@v1 (base tiny): array {name}: sha256 mismatch" in problems
    assert f"vector low@v1 (base tiny): array {name}.lora_A: sha256 mismatch" in problems
    with pytest.raises(IntegrityError, match=f"vector low@v1: array {name} sha256 mismatch"):
        reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "low", "weight": 1.0}]})
        reg.materialize("r", tmp_path / "out")
    assert not (tmp_path / "out").exists()
