"""add-preference: DPO ± label switching, lineage, determinism, interference, plugins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from registry.errors import InterferenceRefused, PluginError
from registry.training.options import TrainingOptions

# aggressive, so that a few steps move a tiny random model measurably (defaults suit real models)
FAST = TrainingOptions(steps=6, batch_size=4, learning_rate=1e-3, warmup_ratio=0.0)
PKU = Path(__file__).parent.parent / "data" / "pku_sample.jsonl"
# the hand-written verbose pairs (detailed over terse) the shipped plugin used before it generated its own
HANDWRITTEN = {
    "data": str(Path(__file__).parent.parent / "data" / "verbose_pairs.jsonl"),
    "heldout_fraction": 0.2,
}


def test_verbose_vector_moves_behaviour_in_the_right_direction(sqlite_reg):
    from transformers import AutoTokenizer

    from registry.evaluation.scoring import dpo_margin, load_model
    from registry.plugins.loader import load

    v = sqlite_reg.add_preference(
        "pairs", "tiny", "verbose", seed=0, options=FAST, plugin_options=HANDWRITTEN
    )
    assert v.ref == "verbose@v1" and v.run.status == "succeeded"
    base = sqlite_reg.base("tiny")
    tok = AutoTokenizer.from_pretrained(base.path)
    held = load("pairs").heldout(**HANDWRITTEN)
    assert held and not set(held) & set(load("pairs").pairs(**HANDWRITTEN))
    base_model = load_model(base.path)
    margin = {
        eta: dpo_margin(
            load_model(base.path, sqlite_reg.merged_state("tiny", [("verbose", eta)])), base_model, tok, held
        )
        for eta in (-1.0, 0.0, 1.0)
    }
    assert margin[0.0] == pytest.approx(0.0, abs=1e-3)
    assert margin[1.0] > margin[0.0] + 1.0
    assert margin[-1.0] < margin[0.0] - 1.0


def test_same_inputs_same_digest_and_lineage_reproduces_it(sqlite_reg, cli):
    v1 = sqlite_reg.add_preference("verbose", "tiny", seed=3, options=FAST)
    code, out, _ = cli("--json", "vector", "show", "verbose@v1")
    lineage = json.loads(out)["lineage"]
    assert code == 0 and lineage["kind"] == "dpo" and lineage["plugin"] == "verbose" and lineage["seed"] == 3
    kept = [p for p in sqlite_reg.run_pairs(lineage["id"])["pairs"] if p["kept"]]
    assert lineage["dataset_size"] == len(kept) > 0 and len(lineage["dataset_digest"]) == 64
    assert {"torch", "transformers", "trl"} <= set(lineage["library_versions"])
    assert lineage["status"] == "succeeded" and lineage["seconds"] > 0
    params = lineage["params"]
    assert params["trained"]["phi_from"] == "float32" and params["trained"]["data_format"] == "plain"
    v2 = sqlite_reg.add_preference(
        lineage["plugin"],
        "tiny",
        seed=lineage["seed"],
        options=TrainingOptions.from_params(params),
        plugin_options=params["plugin_options"],
    )
    assert v2.ref == "verbose@v2" and v2.digest == v1.digest
    assert v2.interference["cosines"]["verbose@v1"]["global"] == pytest.approx(1.0)
    v3 = sqlite_reg.add_preference("verbose", "tiny", seed=4, options=FAST)
    assert v3.digest != v1.digest


def _stored(reg, ref) -> dict[str, np.ndarray]:
    v = reg.vector(ref)
    group = zarr.open_group(store=str(reg.store.path / "data" / v.store_key), mode="r")
    return {name: np.asarray(arr[:], dtype=np.float64).ravel() for name, arr in group.arrays()}


def test_interference_cosine_equals_independent_computation(sqlite_reg, models, cli, tmp_path):
    sqlite_reg.import_vector("a", "tiny", models["plus"])
    sqlite_reg.import_vector("b", "tiny", models["plus2"], models["minus"])
    c = sqlite_reg.add_preference("verbose", "tiny", seed=0, options=FAST)
    vecs = {r: _stored(sqlite_reg, r) for r in ("a", "b", "verbose")}

    def cos(x, y, names=None):
        names = names or sorted(vecs[x])
        xs, ys = np.concatenate([vecs[x][n] for n in names]), np.concatenate([vecs[y][n] for n in names])
        return float(xs @ ys / np.linalg.norm(xs) / np.linalg.norm(ys))

    for other in ("a@v1", "b@v1"):
        stored = c.interference["cosines"][other]
        assert stored["global"] == pytest.approx(cos("verbose", other[0]), abs=1e-9)
        layer1 = [n for n in vecs["a"] if ".layers.1." in n]
        assert stored["per_layer"]["layer.1"] == pytest.approx(cos("verbose", other[0], layer1), abs=1e-9)
    code, out, _ = cli("--json", "interference", "--plot", tmp_path / "gram.png")
    data = json.loads(out)
    assert code == 0 and data["vectors"] == ["a@v1", "b@v1", "verbose@v1"]
    assert data["cosine"][0][1] == pytest.approx(cos("a", "b"), abs=1e-6)
    assert (tmp_path / "gram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cmp = json.loads(cli("--json", "vector", "compare", "a", "verbose")[1])
    assert cmp["global"] == pytest.approx(cos("a", "verbose"), abs=1e-9)


def test_refuse_policy_stores_nothing_and_records_failed_run(sqlite_reg, models):
    from registry.config import InterferencePolicy

    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    keys = sqlite_reg.store.group_keys()
    with pytest.raises(
        InterferenceRefused, match=r"interferes with helpful@v1: \|cosine\| 1.0000 > threshold 0.5"
    ):
        sqlite_reg.import_vector("again", "tiny", models["plus"], policy=InterferencePolicy("refuse", 0.5))
    with pytest.raises(InterferenceRefused, match="policy: refuse"):
        sqlite_reg.add_preference("verbose", "tiny", options=FAST, policy=InterferencePolicy("refuse", 0.0))
    assert [v.ref for v in sqlite_reg.vectors()] == ["helpful@v1"]
    assert sqlite_reg.store.group_keys() == keys
    from sqlalchemy import select

    from registry.db.models import TrainingRun

    with sqlite_reg.Session() as s:
        runs = list(s.scalars(select(TrainingRun).where(TrainingRun.kind == "dpo")))
    assert [r.status for r in runs] == ["failed"] and "InterferenceRefused" in runs[0].error
    assert not list((sqlite_reg.home / ".scratch").iterdir())


def test_warn_policy_stores_with_warning(sqlite_reg, models):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    v = sqlite_reg.import_vector("again", "tiny", models["plus"])
    assert "interferes with helpful@v1" in v.interference["warning"]


def test_pku_plugins_follow_their_label(tmp_path):
    from registry.plugins.loader import load

    rows = [json.loads(line) for line in PKU.read_text().splitlines()]
    helpful, harmless = load("helpful"), load("harmless")
    pairs = helpful.pairs(data=str(PKU)) + helpful.heldout(data=str(PKU))
    assert len(pairs) == len(rows)
    by_prompt = {p.prompt: p for p in pairs}
    for r in rows:
        p = by_prompt[r["prompt"]]
        assert p.chosen.strip() == r[f"response_{r['better_response_id']}"]
        assert p.rejected.strip() == r[f"response_{1 - r['better_response_id']}"]
    safe = {p.prompt: p for p in harmless.pairs(data=str(PKU)) + harmless.heldout(data=str(PKU))}
    differing = [r for r in rows if r["better_response_id"] != r["safer_response_id"]]
    assert differing and all(safe[r["prompt"]].chosen == by_prompt[r["prompt"]].rejected for r in differing)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "response_0": "a", "response_1": "b", "safer_response_id": 7}\n')
    with pytest.raises(PluginError, match=r"bad\.jsonl:1: safer_response_id must be 0 or 1, not 7"):
        harmless.pairs(data=str(bad))


def test_helpful_from_fixture_via_cli(sqlite_reg, cli):
    code, out, err = cli(
        "--json", "add-preference", "helpful", "--base", "tiny", "--data", PKU, "--steps", "3", "--seed", "1"
    )
    assert code == 0, err
    v = json.loads(out)
    assert v["ref"] == "helpful@v1" and v["lineage"]["plugin_version"] == "1.0.0"
    assert v["lineage"]["params"]["plugin_options"] == {"data": str(PKU)}


def test_lora_rank_stores_phi_as_its_factors(sqlite_reg):
    v = sqlite_reg.add_preference(
        "verbose",
        "tiny",
        name="verbose-lora",
        options=TrainingOptions(steps=3, lora_rank=4, learning_rate=1e-3),
    )
    arrays = _stored(sqlite_reg, "verbose-lora")
    assert v.norm > 0 and v.run.params["lora_rank"] == 4
    # φ = [s·B₊, −s·B₋]·[A₊; A₋]: rank 2r, kept as its factors for every adapted weight
    assert v.rank == 8
    q = "model.layers.0.self_attn.q_proj.weight"
    assert q not in arrays and arrays[f"{q}.lora_A"].size == 8 * 64 and arrays[f"{q}.lora_B"].size == 64 * 8
    data = sqlite_reg.store.open(v.store_key)
    b, a = data.factors(q)
    phi = b.astype(np.float64) @ a.astype(np.float64)
    assert np.abs(phi).max() > 0
    np.testing.assert_allclose(data.read_rows(q, 0, 64), phi, rtol=1e-5, atol=1e-7)
    # LoRA's A starts random and B at zero: after a few steps both halves moved, differently
    assert np.abs(b[:, :4]).max() > 0 and np.abs(b[:, 4:]).max() > 0 and not np.allclose(a[:4], a[4:])
    low = {t.name for t in v.tensors if t.factors}
    assert low == {n for n in data.names() if n.endswith("proj.weight")} and len(low) == 14
    # LoRA targets linear layers only: embeddings, norms and the head stay exactly where the base is
    for n in ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"):
        assert not arrays[n].any() and n not in low
    assert v.norm == pytest.approx(
        np.sqrt(
            sum(np.sum(data.read_rows(n, 0, data.spec(n).shape[0]).astype(np.float64) ** 2) for n in low)
        ),
        rel=1e-6,
    )


def test_broken_plugins_fail_with_clear_messages(sqlite_reg, cli, test_plugins, monkeypatch):
    test_plugins(missing="no_such_module_xyz:plugin", notaplugin="json:dumps")
    code, _, err = cli("add-preference", "missing", "--base", "tiny")
    assert code != 0
    assert err.strip() == (
        "Error: plugin 'missing' (no_such_module_xyz:plugin) failed to load: "
        "ModuleNotFoundError: No module named 'no_such_module_xyz'"
    )
    with pytest.raises(PluginError, match="failed to start: TypeError"):
        sqlite_reg.add_preference("notaplugin", "tiny")
    code, _, err = cli("add-preference", "nosuch", "--base", "tiny")
    assert code != 0 and "No such command 'nosuch'" in err


def test_failing_plugin_is_reported_and_leaves_no_vector(sqlite_reg, monkeypatch):
    from registry.plugins.loader import load
    from registry.plugins.spec import Plugin

    verbose = load("verbose")

    def boom(**_):
        raise RuntimeError("dataset server down")

    monkeypatch.setattr(verbose, "prompts", boom)
    assert isinstance(verbose, Plugin)
    with pytest.raises(
        PluginError, match="plugin verbose failed to supply prompts: RuntimeError: dataset server down"
    ):
        sqlite_reg.add_preference("verbose", "tiny", options=FAST)
    assert sqlite_reg.vectors() == []


def test_interrupted_training_is_recorded_failed(sqlite_reg, monkeypatch):
    import registry.training.dpo as dpo

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(dpo, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sqlite_reg.add_preference("verbose", "tiny", options=FAST)
    from sqlalchemy import select

    from registry.db.models import TrainingRun

    with sqlite_reg.Session() as s:
        run = s.scalar(select(TrainingRun))
    assert run.status == "failed" and run.error == "KeyboardInterrupt" and run.ended_at is not None
    assert sqlite_reg.vectors() == [] and sqlite_reg.store.group_keys() == []


def test_pairs_plugin_reads_any_jsonl(tmp_path):
    from registry.plugins.loader import load

    data = tmp_path / "p.jsonl"
    rows = [{"prompt": f"q{i}", "chosen": f" good {i}", "rejected": f" bad {i}"} for i in range(10)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    plugin = load("pairs")
    assert [(p.prompt, p.chosen, p.rejected) for p in plugin.pairs(data=str(data))] == [
        (r["prompt"], r["chosen"], r["rejected"]) for r in rows
    ]
    assert plugin.heldout(data=str(data)) == []
    train, held = (
        plugin.pairs(data=str(data), heldout_fraction=0.2),
        plugin.heldout(data=str(data), heldout_fraction=0.2),
    )
    assert len(train) == 8 and len(held) == 2 and not set(train) & set(held)
    data.write_text('{"prompt": "q", "chosen": "a"}\n')
    with pytest.raises(PluginError, match=r"p\.jsonl:1: missing field\(s\) rejected"):
        plugin.pairs(data=str(data))
    data.write_text("not json\n")
    with pytest.raises(PluginError, match=r"p\.jsonl:1: invalid JSON"):
        plugin.pairs(data=str(data))
