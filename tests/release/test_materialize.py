"""Materialized weights equal an independent torch computation, bit for bit, every run."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file


def recipe(name="mix", terms=(("helpful", 1.0), ("harmless@v1", -0.5)), **extra):
    return {
        "name": name,
        "base": "tiny",
        "method": "linear",
        "terms": [{"vector": v, "weight": w} for v, w in terms],
        **extra,
    }


def expected_weights(models, terms, dtype):
    """θbase + Σ η·(θ+ − θ−) in plain torch, in float32, cast once at the end."""
    base = load_file(models["base"] / "model.safetensors")
    pairs = {
        "helpful": (load_file(models["plus"] / "model.safetensors"), base),
        "harmless": (
            load_file(models["plus2"] / "model.safetensors"),
            load_file(models["minus"] / "model.safetensors"),
        ),
    }
    out = {}
    for name, t in base.items():
        acc = t.float()
        for vec, w in terms:
            pos, neg = pairs[vec]
            acc = acc + torch.tensor(w, dtype=torch.float32) * (pos[name].float() - neg[name].float())
        out[name] = acc.to(dtype)
    return out


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_matches_independent_torch_computation(loaded, models, tmp_path, dtype):
    loaded.add_recipe(recipe(dtype=dtype))
    loaded.materialize("mix", tmp_path / "out")
    got = load_file(tmp_path / "out" / "model.safetensors")
    want = expected_weights(models, [("helpful", 1.0), ("harmless", -0.5)], getattr(torch, dtype))
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].dtype == getattr(torch, dtype)
        assert torch.equal(got[name], want[name]), name


def test_default_dtype_is_the_bases(loaded, tmp_path):
    r, _ = loaded.add_recipe(recipe())
    assert r.dtype == "bfloat16"
    loaded.materialize("mix", tmp_path / "out")
    got = load_file(tmp_path / "out" / "model.safetensors")
    assert {t.dtype for t in got.values()} == {torch.bfloat16}


def test_rematerialize_is_byte_identical(loaded, tmp_path):
    loaded.add_recipe(recipe(dtype="float16"))
    m1 = loaded.materialize("mix", tmp_path / "a")
    m2 = loaded.materialize("mix@v1", tmp_path / "b")
    a = (tmp_path / "a" / "model.safetensors").read_bytes()
    b = (tmp_path / "b" / "model.safetensors").read_bytes()
    assert a == b
    assert m1.output_digest == m2.output_digest
    assert [m.output_digest for m in loaded.materializations("mix")] == [m1.output_digest] * 2
    for f in ("registry-lock.json", "README.md", "config.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_folder_loads_generates_and_card_names_base(loaded, tmp_path):
    from huggingface_hub import ModelCard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded.add_recipe(recipe())
    loaded.materialize("mix", tmp_path / "out")
    out = tmp_path / "out"
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("Please explain", return_tensors="pt").input_ids
    gen = model.generate(ids, max_new_tokens=5, do_sample=False)
    assert gen.shape[1] == ids.shape[1] + 5
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == "tiny"
    assert card.data.base_model_relation == "merge"
    assert "helpful" in card.text and "harmless" in card.text
    lock = json.loads((out / "registry-lock.json").read_text())
    assert lock["recipe"]["terms"][1] == {
        "vector": "harmless",
        "version": 1,
        "weight": -0.5,
        "digest": loaded.vector("harmless").digest,
    }
    assert lock["files"]["model.safetensors"] == loaded.materializations()[0].files["model.safetensors"]


def test_sharded_output_has_index_and_loads(loaded, models, tmp_path):
    from transformers import AutoModelForCausalLM

    loaded.add_recipe(recipe(dtype="float32"))
    loaded.materialize("mix", tmp_path / "out", shard_bytes=100_000)
    out = tmp_path / "out"
    shards = sorted(p.name for p in out.glob("*.safetensors"))
    assert len(shards) > 1 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(shards)
    model = AutoModelForCausalLM.from_pretrained(out)
    want = expected_weights(models, [("helpful", 1.0), ("harmless", -0.5)], torch.float32)
    for name, p in model.state_dict().items():
        assert torch.equal(p, want[name]), name


def test_output_in_place_is_refused_unless_forced(loaded, tmp_path):
    from registry.errors import OutputExists

    loaded.add_recipe(recipe())
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExists, match="exists and is not empty"):
        loaded.materialize("mix", out)
    assert (out / "keep.txt").read_text() == "mine"
    # --force replaces only an earlier output of this registry, never a folder of the user's
    with pytest.raises(OutputExists, match="not an earlier output of this registry"):
        loaded.materialize("mix", out, force=True)
    assert (out / "keep.txt").read_text() == "mine"
    other = tmp_path / "other"
    loaded.materialize("mix", other)
    (other / "extra.txt").write_text("x")
    loaded.materialize("mix", other, force=True, reuse=False)
    assert not (other / "extra.txt").exists() and (other / "model.safetensors").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".out", ".other"))]
