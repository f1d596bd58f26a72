"""storage.bf16's integer widen and round give ml_dtypes' bits (today's reference) and torch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ml_dtypes import bfloat16

from registry.storage import bf16


def reference(x: np.ndarray) -> np.ndarray:
    """ml_dtypes' float32 → bf16 cast: what materialize wrote before storage.bf16."""
    return np.ascontiguousarray(x, dtype=np.float32).astype(bfloat16).view(np.uint16)


def hard_patterns() -> np.ndarray:
    """Every float32 the rounding could get wrong: ties of both parities at every exponent,
    the overflow boundary, subnormals, zeros, infinities and NaNs with any payload."""
    exps = np.arange(256, dtype=np.uint32) << 23
    mant = np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0x17FFF, 0x18000, 0x18001, 0x7F7FFF, 0x7F8000, 0x7FFFFF],
                    np.uint32)  # fmt: skip
    bits = (exps[:, None] | mant[None, :]).reshape(-1)
    boundary = np.arange(0x7F7F7FF0, 0x7F800010, dtype=np.uint32)  # around bf16's overflow
    nans = np.array([0x7F800001, 0x7FC00000, 0x7FFF0000, 0x7FFF7FFF, 0x7FFF8000, 0x7FFFFFFF], np.uint32)
    both = np.concatenate([bits, boundary, nans])
    return np.concatenate([both, both | 0x80000000]).view(np.float32)


def test_widen_is_exact_for_every_bf16_pattern():
    raw = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    want = raw.view(bfloat16).astype(np.float32)
    assert np.array_equal(bf16.widen(raw).view(np.uint32), want.view(np.uint32))
    out = np.empty(raw.size, np.float32)
    assert bf16.widen(raw.reshape(256, 256), out) is not None
    assert np.array_equal(out.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("step", [bf16.STEP, 7])  # one slice, and many slices with specials in some
def test_round_gives_ml_dtypes_bits_for_hard_and_random_patterns(step, monkeypatch):
    monkeypatch.setattr(bf16, "STEP", step)
    rng = np.random.default_rng(0)
    for x in (
        hard_patterns(),
        rng.integers(0, 2**32, 1 << 20, dtype=np.uint32).view(np.float32),  # any bits
        rng.standard_normal(100_003).astype(np.float32) * np.float32(0.02),  # weights
    ):
        assert np.array_equal(bf16.narrow(x), reference(x))


def test_round_matches_torch_and_reports_finiteness():
    x = hard_patterns()
    finite_in = np.isfinite(x)
    ours = bf16.narrow(x)
    theirs = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(ours[finite_in], theirs[finite_in])
    weights = np.random.default_rng(1).standard_normal(3 * bf16.STEP + 5).astype(np.float32)
    out = np.empty(weights.size, np.uint16)
    assert bf16.round_into(weights, out) is True
    for bad in (np.inf, -np.inf, np.nan, np.float32(3.4e38)):  # the last rounds to inf
        y = weights.copy()
        y[2 * bf16.STEP + 1] = bad
        assert bf16.round_into(y, out) is False
        assert np.array_equal(out, reference(y))
    edge = np.array([0x7F7F7FFF, 0xFF7F7FFF], np.uint32).view(np.float32)  # the largest that stay finite
    assert bf16.round_into(edge, np.empty(2, np.uint16)) is True


def test_narrow_keeps_shape_and_handles_empty():
    x = np.random.default_rng(2).standard_normal((3, 5, 7)).astype(np.float32)
    assert bf16.narrow(x).shape == (3, 5, 7)
    assert np.array_equal(bf16.narrow(x), reference(x))
    assert bf16.narrow(np.zeros(0, np.float32)).size == 0
