"""`orthogonal` merging: Gram–Schmidt of later terms, its removal report, and what it buys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from registry.merging.methods.linear import Linear
from registry.merging.methods.orthogonal import Orthogonal, coefficients, removed_fraction
from registry.training.options import TrainingOptions

FAST = TrainingOptions(steps=6, batch_size=4, learning_rate=1e-3)


def _projected(ds: list[np.ndarray]) -> list[np.ndarray]:
    """Independent reference: uₖ = φₖ minus its least-squares projection on φ₁…φₖ₋₁."""
    x = [d.astype(np.float64).ravel() for d in ds]
    out = [x[0]]
    for k in range(1, len(x)):
        a = np.stack(x[:k], axis=1)
        c, *_ = np.linalg.lstsq(a, x[k], rcond=None)
        out.append(x[k] - a @ c)
    return out


def test_orthogonal_matches_least_squares_projection():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 5)).astype(np.float32)
    d1 = rng.normal(size=(6, 5)).astype(np.float32)
    d2 = (0.8 * d1 + 0.3 * rng.normal(size=(6, 5))).astype(np.float32)
    d3 = rng.normal(size=(6, 5)).astype(np.float32)
    weights = [1.0, 0.5, -2.0]
    got = Orthogonal().merge("w", base, [d1, d2, d3], weights)
    us = _projected([d1, d2, d3])
    want = base.astype(np.float64).ravel() + sum(w * u for w, u in zip(weights, us, strict=True))
    assert got.dtype == np.float32 and np.allclose(got.ravel(), want, atol=1e-5)
    # later terms are orthogonal to earlier ones; the first is untouched
    assert abs(us[1] @ us[0]) < 1e-8 and abs(us[2] @ us[1]) < 1e-8
    # deterministic, bit for bit
    assert np.array_equal(got, Orthogonal().merge("w", base, [d1, d2, d3], weights))
    # a term lying in the earlier span is removed entirely; one term alone is linear
    assert np.array_equal(
        Orthogonal().merge("w", base, [d1, 2 * d1], [1.0, 1.0]), Linear().merge("w", base, [d1], [1.0])
    )
    assert np.array_equal(Orthogonal().merge("w", base, [d1], [0.7]), Linear().merge("w", base, [d1], [0.7]))


def test_removed_fraction_by_hand():
    # φ₁ = (1, 0), φ₂ = (1, 1): u₂ = (0, 1), so 1 − 1/√2 of φ₂'s norm is removed
    x = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert removed_fraction(x @ x.T).tolist() == pytest.approx([0.0, 1 - 1 / np.sqrt(2)])
    assert coefficients(x @ x.T, [1.0, 1.0]).tolist() == pytest.approx([0.0, 1.0])


def test_interference_reports_removed_share_and_materializes(sqlite_reg, models, cli, tmp_path):
    from safetensors.numpy import load_file

    sqlite_reg.import_vector("a", "tiny", models["plus"])
    sqlite_reg.import_vector("b", "tiny", models["plus2"], models["minus"])
    recipe = {"name": "ab", "base": "tiny", "method": "orthogonal", "dtype": "float32"}
    sqlite_reg.add_recipe(
        {**recipe, "terms": [{"vector": "a", "weight": 1.0}, {"vector": "b", "weight": 0.5}]}
    )
    code, out, err = cli("--json", "interference", "--recipe", "ab")
    assert code == 0, err
    removed = json.loads(out)["orthogonal_removed"]
    # independent: per tensor, the share of φ_b's squared norm left after projecting on φ_a
    base = load_file(models["base"] / "model.safetensors")
    plus, plus2, minus = (load_file(models[k] / "model.safetensors") for k in ("plus", "plus2", "minus"))
    kept = total = 0.0
    for n in base:
        a = (plus[n].astype(np.float64) - base[n]).ravel()
        b = (plus2[n].astype(np.float64) - minus[n]).ravel()
        if not a.any() and not b.any():
            continue
        u = _projected([a, b])[1]
        kept, total = kept + u @ u, total + b @ b
    assert removed["a@v1"] == 0.0
    assert removed["b@v1"] == pytest.approx(1 - np.sqrt(kept / total), abs=1e-6)
    m1 = sqlite_reg.materialize("ab", tmp_path / "o1")
    m2 = sqlite_reg.materialize("ab", tmp_path / "o2", reuse=False)
    assert m1.output_digest == m2.output_digest
    state = sqlite_reg.merged_state("tiny", [("a", 1.0), ("b", 0.5)], "orthogonal")
    written = load_file(tmp_path / "o1" / "model.safetensors")
    assert all(np.array_equal(written[n], state[n].numpy()) for n in written)


HANDWRITTEN = Path(__file__).parent.parent / "data" / "verbose_pairs.jsonl"  # detailed over terse


def _swapped(tmp_path: Path) -> Path:
    """The hand-written verbose pairs with their labels switched: a vector that fights `verbose`."""
    rows = [json.loads(line) for line in HANDWRITTEN.read_text().splitlines() if line.strip()]
    out = tmp_path / "terse.jsonl"
    out.write_text(
        "".join(json.dumps({**r, "chosen": r["rejected"], "rejected": r["chosen"]}) + "\n" for r in rows)
    )
    return out


def test_orthogonal_keeps_the_first_preference_when_an_overlapping_one_is_added(sqlite_reg, tmp_path):
    from registry.evaluation.scoring import heldout_margin

    verbose = {"data": str(HANDWRITTEN), "heldout_fraction": 0.2}
    sqlite_reg.add_preference("pairs", "tiny", "verbose", seed=0, options=FAST, plugin_options=verbose)
    data = {"data": str(_swapped(tmp_path)), "heldout_fraction": 0.2}
    sqlite_reg.add_preference("pairs", "tiny", name="terse", seed=1, options=FAST, plugin_options=data)
    cos = sqlite_reg.compare("verbose", "terse")["global"]
    assert cos < -0.3  # deliberately overlapping (opposed)

    def margin(terms, method="linear"):
        return heldout_margin(sqlite_reg, "tiny", terms, "pairs", method, plugin_options=verbose)

    alone = margin([("verbose", 1.0)])
    lin = margin([("verbose", 1.0), ("terse", 1.0)])
    orth = margin([("verbose", 1.0), ("terse", 1.0)], "orthogonal")
    assert alone > 1.0
    assert alone - orth < alone - lin  # less of the first preference's margin lost
    assert alone - orth < 0.5 * (alone - lin)
