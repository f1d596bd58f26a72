"""`materialize --as-adapter`: a linear recipe as a PEFT LoRA adapter, loaded with peft.

Logits of the base with the adapter are compared with the full materialization (float32);
the SVD error of a dense term with an independent numpy computation.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from registry.errors import RegistryError
from registry.testing.factors import LINEAR, random_factors

PROMPTS = ["The quick brown fox", "Please explain the answer in detail"]


def logits(folder: Path, adapter: Path | None = None) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    ids = tok(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**ids).logits.double().numpy()


def with_weights(base: Path, deltas: dict[str, np.ndarray], out: Path) -> Path:
    """The base in float32 plus `deltas` (float64, rounded once): an independent full model."""
    shutil.copytree(base, out)
    t = load_file(base / "model.safetensors")
    w = {n: (x.astype(np.float64) + deltas.get(n, 0.0)).astype(np.float32) for n, x in t.items()}
    save_file(w, out / "model.safetensors", metadata={"format": "pt"})
    cfg = json.loads((out / "config.json").read_text())
    cfg["torch_dtype"] = cfg["dtype"] = "float32"
    (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.fixture
def lows(sqlite_reg, models):
    f1, f2 = random_factors(models["base"], 4, seed=1), random_factors(models["base"], 2, seed=2)
    sqlite_reg.import_low_rank("a", "tiny", f1)
    sqlite_reg.import_low_rank("b", "tiny", f2)
    return sqlite_reg, f1, f2


def test_low_rank_recipe_is_an_exact_adapter(lows, models, tmp_path, cli):
    reg, f1, f2 = lows
    terms = [{"vector": "a", "weight": 0.7}, {"vector": "b", "weight": -0.4}]
    reg.add_recipe({"name": "mix", "base": "tiny", "dtype": "float32", "terms": terms})
    full = reg.materialize("mix", tmp_path / "full")
    code, out, err = cli("materialize", "mix", "--out", tmp_path / "adapter", "--as-adapter")
    assert code == 0, err
    assert "adapter of mix@v1" in out and "exact" in out
    ad = tmp_path / "adapter"
    assert {p.name for p in ad.iterdir()} == {
        "adapter_config.json",
        "adapter_model.safetensors",
        "README.md",
        "registry-lock.json",
    }
    # factors stacked, η folded into B: bit for bit
    w = load_file(ad / "adapter_model.safetensors")
    q = "model.layers.1.self_attn.q_proj.weight"
    stem = "base_model.model." + q.removesuffix(".weight")
    assert np.array_equal(w[f"{stem}.lora_A.weight"], np.concatenate([f1[q][1], f2[q][1]]))
    assert np.array_equal(
        w[f"{stem}.lora_B.weight"],
        np.concatenate([np.float32(0.7) * f1[q][0], np.float32(-0.4) * f2[q][0]], axis=1),
    )
    config = json.loads((ad / "adapter_config.json").read_text())
    assert config["r"] == config["lora_alpha"] == 6 and len(config["target_modules"]) == 14
    lock = json.loads((ad / "registry-lock.json").read_text())
    assert lock["notes"]["adapter"]["exact"] and lock["notes"]["adapter"]["relative_error"] == 0.0
    assert lock["recipe"]["content_digest"] == full.recipe.content_digest
    assert reg.verify_lock(ad / "registry-lock.json") == []
    card = (ad / "README.md").read_text()
    assert "base_model_relation: adapter" in card and "- relative error: 0\n" in card
    # peft over the base gives the full materialization's logits
    got, want = logits(models["base"], ad), logits(tmp_path / "full")
    assert np.abs(got - want).max() < 1e-4
    assert np.abs(want - logits(models["base"])).max() > 1e-2  # the recipe does move the model
    # a full materialization of the same recipe never reuses the adapter folder
    again = reg.materialize("mix", tmp_path / "full2")
    assert again.reused_from_id == full.id


def test_dense_term_gets_truncated_svd_with_its_error_recorded(lows, models, tmp_path, cli):
    reg, f1, _ = lows
    base = load_file(models["base"] / "model.safetensors")
    rng = np.random.default_rng(5)
    noise = {
        n: (rng.standard_normal(t.shape) * 0.02).astype(np.float32)
        for n, t in base.items()
        if any(f".{m}." in n for m in LINEAR)
    }
    noise["model.norm.weight"] = np.full(base["model.norm.weight"].shape, 0.01, np.float32)
    for role, values in (("plus", noise), ("minus", {})):
        d = tmp_path / role
        d.mkdir()
        shutil.copy(models["base"] / "config.json", d)
        full_set = {n: values.get(n, np.zeros(t.shape, np.float32)) for n, t in base.items()}
        save_file(full_set, d / "model.safetensors", metadata={"format": "pt"})
    reg.import_vector("dense", "tiny", tmp_path / "plus", tmp_path / "minus")
    terms = [{"vector": "a", "weight": 1.0}, {"vector": "dense", "weight": 0.5}]
    reg.add_recipe({"name": "mixed", "base": "tiny", "dtype": "float32", "terms": terms})
    with pytest.raises(RegistryError, match="has dense terms: pass --rank R for their truncated SVD"):
        reg.materialize_adapter("mixed", tmp_path / "nope")
    assert not (tmp_path / "nope").exists()
    code, out, err = cli(
        "--json", "materialize", "mixed", "--out", tmp_path / "ad", "--as-adapter", "--rank", "3"
    )
    assert code == 0, err
    report = json.loads(out)["adapter"]

    # independently: ‖Σηφ − adapter‖ / ‖Σηφ‖ with numpy's SVD of each dense share
    lost = total = 0.0
    deltas = {}
    for n, x in noise.items():
        d = 0.5 * x.astype(np.float64)
        low = f1[n][0].astype(np.float64) @ f1[n][1].astype(np.float64) if n in f1 else 0.0
        total += float(np.sum((low + d) ** 2))
        if x.ndim == 1:
            lost += float(np.sum((low + d) ** 2))  # a norm scale: no LoRA module can carry it
            continue
        u, s, vt = np.linalg.svd(d)
        lost += float(np.sum(s[3:] ** 2))
        deltas[n] = low + (u[:, :3] * s[:3]) @ vt[:3]
    assert report["relative_error"] == pytest.approx(np.sqrt(lost / total), rel=1e-6)
    assert 0.05 < report["relative_error"] < 1.0 and not report["exact"]
    assert report["omitted"] == ["model.norm.weight"] and report["svd_rank"] == 3
    code, out, _ = cli("materialize", "mixed", "--out", tmp_path / "ad2", "--as-adapter", "--rank", "3")
    assert f"relative error {report['relative_error']:.4g} at SVD rank 3" in out
    assert "left out: model.norm.weight" in out
    # the adapter is base + low + rank-3 SVD of the dense share (logits match that model)
    # and differs from the full materialization by what the truncation dropped
    reg.materialize("mixed", tmp_path / "full")
    got = logits(models["base"], tmp_path / "ad")
    truncated = logits(with_weights(models["base"], deltas, tmp_path / "truncated"))
    assert np.abs(got - truncated).max() < 1e-4
    assert np.abs(got - logits(tmp_path / "full")).max() > 1e-3


def test_only_linear_recipes_and_same_signing(lows, tmp_path, cli):
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec

    reg, *_ = lows
    reg.add_recipe({"name": "t", "base": "tiny", "method": "ties", "terms": [{"vector": "a", "weight": 1.0}]})
    code, _, err = cli("materialize", "t", "--out", tmp_path / "x", "--as-adapter")
    assert code != 0 and err.strip() == (
        "Error: --as-adapter writes linear recipes only; t@v1 uses method ties"
    )
    code, _, err = cli("materialize", "t", "--out", tmp_path / "x", "--rank", "4")
    assert code != 0 and "--rank applies only with --as-adapter" in err
    assert not (tmp_path / "x").exists()
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = tmp_path / "release.key", tmp_path / "release.pub"
    priv.write_bytes(key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo))
    reg.add_recipe({"name": "one", "base": "tiny", "terms": [{"vector": "a", "weight": 1.0}]})
    reg.materialize_adapter("one", tmp_path / "signed", sign_key=priv)
    check = [
        sys.executable,
        "-m",
        "model_signing",
        "verify",
        "key",
        "--signature",
        str(tmp_path / "signed.sig"),
    ]
    check += ["--public_key", str(pub), str(tmp_path / "signed")]
    assert subprocess.run(check, capture_output=True).returncode == 0
    (tmp_path / "signed" / "adapter_config.json").write_text("{}")
    assert subprocess.run(check, capture_output=True).returncode != 0
    assert reg.verify_lock(tmp_path / "signed" / "registry-lock.json") == [
        "adapter_config.json: sha256 mismatch"
    ]
