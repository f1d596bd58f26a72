"""Merge methods against hand-computed results and their published definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from registry.merging.methods.dare import Dare
from registry.merging.methods.linear import Linear
from registry.merging.methods.ties import Ties, trim

BASE = np.ones(4, np.float32)
D1 = np.array([2.5, -2.0, 0.125, 3.0], np.float32)
D2 = np.array([-1.5, -1.0, 2.0, -0.125], np.float32)
D3 = np.array([-4.0, 1.0, -0.25, 2.0], np.float32)


def test_linear_is_task_arithmetic():
    got = Linear().merge("t", BASE, [D1, D2], [1.0, -0.5])
    assert got.tolist() == [1 + 2.5 + 0.75, 1 - 2.0 + 0.5, 1 + 0.125 - 1.0, 1 + 3.0 + 0.0625]


def test_ties_trim_elect_disjoint_merge_by_hand():
    # trim to density 0.5: D1 -> [2.5,0,0,3], D2 -> [-1.5,0,2,0], D3 -> [-4,0,0,2]
    assert trim(D3, 0.5).tolist() == [-4.0, 0.0, 0.0, 2.0]
    # weights 1, 1, 0.5 -> τ3 = [-2,0,0,1]; Σ = [-1,0,2,4] -> elected signs [-,0,+,+]
    # disjoint mean: idx0 of (-1.5, -2) = -1.75 (2.5 disagrees); idx2 = 2; idx3 of (3, 1) = 2
    got = Ties(params={"density": 0.5}).merge("t", BASE, [D1, D2, D3], [1.0, 1.0, 0.5])
    assert got.tolist() == [1 - 1.75, 1.0, 1 + 2.0, 1 + 2.0]
    scaled = Ties(params={"density": 0.5, "lambda": 0.5}).merge("t", BASE, [D1, D2, D3], [1.0, 1.0, 0.5])
    assert scaled.tolist() == [1 - 0.875, 1.0, 2.0, 2.0]
    # density 1 keeps everything: a single vector is then plain task arithmetic
    assert Ties(params={"density": 1.0}).merge("t", BASE, [D1], [1.0]).tolist() == (BASE + D1).tolist()


def test_dare_drops_and_rescales():
    rng = np.random.default_rng(0)
    delta = rng.normal(size=(200, 300)).astype(np.float32)
    base = np.zeros_like(delta)
    dare = Dare(params={"drop_rate": 0.75, "seed": 7})
    got = dare.merge("w", base, [delta], [1.0])
    kept = got != 0
    assert np.allclose(got[kept], delta[kept] * 4.0, rtol=0, atol=0)  # survivors scaled by 1/(1−p)
    assert 0.23 < kept.mean() < 0.27  # about 1 − p survive
    assert abs(got.mean() - delta.mean()) < 0.02  # the rescaling keeps the expectation
    assert np.array_equal(got, Dare(params={"drop_rate": 0.75, "seed": 7}).merge("w", base, [delta], [1.0]))
    other = Dare(params={"drop_rate": 0.75, "seed": 8}).merge("w", base, [delta], [1.0])
    assert not np.array_equal(got, other)
    # each tensor and each term draws its own mask
    assert not np.array_equal(got, dare.merge("v", base, [delta], [1.0]))
    assert np.array_equal(Dare(params={"drop_rate": 0.0}).merge("w", base, [delta], [2.0]), 2 * delta)


@pytest.mark.parametrize("method", ["ties", "dare"])
def test_methods_through_materialize(sqlite_reg, models, tmp_path, method):
    from registry.merging.methods import get_method

    sqlite_reg.import_vector("a", "tiny", models["plus"])
    sqlite_reg.import_vector("b", "tiny", models["plus2"], models["minus"])
    params = {"density": 0.3} if method == "ties" else {"drop_rate": 0.5, "seed": 3}
    sqlite_reg.add_recipe(
        {
            "name": method,
            "base": "tiny",
            "method": method,
            "parameters": params,
            "dtype": "float32",
            "terms": [{"vector": "a", "weight": 1.0}, {"vector": "b", "weight": 0.5}],
        }
    )
    m1 = sqlite_reg.materialize(method, tmp_path / "one", reuse=False)
    m2 = sqlite_reg.materialize(method, tmp_path / "two", reuse=False)
    assert m1.output_digest == m2.output_digest
    got = load_file(tmp_path / "one" / "model.safetensors")
    base, plus = (
        load_file(models["base"] / "model.safetensors"),
        load_file(models["plus"] / "model.safetensors"),
    )
    plus2, minus = (
        load_file(models["plus2"] / "model.safetensors"),
        load_file(models["minus"] / "model.safetensors"),
    )
    unit = get_method(method)(params=get_method(method).validate_parameters(params))
    for name, t in base.items():
        deltas = [
            (plus[name].float() - t.float()).numpy(),
            (plus2[name].float() - minus[name].float()).numpy(),
        ]
        want = unit.merge(name, t.float().numpy(), deltas, [1.0, 0.5])
        assert torch.equal(got[name], torch.from_numpy(want)), name
