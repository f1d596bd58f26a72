"""φ blocks: the exponent rule that spares most of the exactness check, checked against floats."""

from __future__ import annotations

import numpy as np
import pytest
from ml_dtypes import bfloat16

from registry.errors import IncompatibleWeights
from registry.storage import delta
from registry.storage.tensor_io import TensorSpec


class Arrays:
    """A TensorReader over in-memory raw arrays (bf16 as uint16 bits, like safetensors)."""

    def __init__(self, tag: str, **arrays: np.ndarray):
        self.tag, self.arrays = tag, arrays

    def names(self) -> list[str]:
        return sorted(self.arrays)

    def spec(self, name: str) -> TensorSpec:
        return TensorSpec(name, self.tag, self.arrays[name].shape)

    def read_rows(self, name: str, a: int, b: int) -> np.ndarray:
        return self.arrays[name][a:b].copy()


def _patterns(tag: str, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of exponent fields at most `gap` apart, extreme and middle mantissas, all signs."""
    bits, man = (8, 7) if tag == "BF16" else (5, 10)
    fields = np.arange(0, 2**bits - 1)  # the all-ones field is Inf/NaN
    mant = np.array([0, 1, 2 ** (man - 1), 2**man - 1])
    fp, fm = np.meshgrid(fields, fields, indexing="ij")
    keep = np.abs(fp - fm) <= gap
    fp, fm = fp[keep], fm[keep]
    out = []
    for x, y in ((fp, fm),):
        for mp in mant:
            for mm in mant:
                for sp in (0, 1):
                    for sm in (0, 1):
                        p = (sp << (bits + man)) | (x << man) | mp
                        m = (sm << (bits + man)) | (y << man) | mm
                        out.append((p, m))
    p = np.concatenate([o[0] for o in out]).astype(np.uint16)
    m = np.concatenate([o[1] for o in out]).astype(np.uint16)
    return p, m


def _floats(raw: np.ndarray, tag: str) -> np.ndarray:
    return raw.view(bfloat16 if tag == "BF16" else np.float16).astype(np.float64)


@pytest.mark.parametrize("tag,gap", [("BF16", 15), ("F16", 12)])
def test_exponent_rule_only_vouches_for_exact_differences(tag, gap):
    p, m = _patterns(tag, gap)
    # the rule lets every one of these pairs through...
    assert delta._outside_exact_rule(p, m, tag).size == 0
    # ...and each one's float32 difference is the exact (float64) difference
    exact = _floats(p, tag) - _floats(m, tag)
    finite = np.abs(exact) <= np.finfo(np.float32).max  # overflow is refused before the rule
    assert np.array_equal(exact[finite].astype(np.float32).astype(np.float64), exact[finite])
    # two fields further apart, float32 does lose bits: the rule must hand every such pair over
    wide_p, wide_m = _patterns(tag, gap + 2)
    wide_exact = _floats(wide_p, tag) - _floats(wide_m, tag)
    with np.errstate(over="ignore"):
        as_f32 = wide_exact.astype(np.float32).astype(np.float64)
    lost = np.isfinite(as_f32) & (as_f32 != wide_exact)
    assert lost.any()
    suspects = np.zeros(wide_p.size, bool)
    suspects[delta._outside_exact_rule(wide_p, wide_m, tag)] = True
    assert not (lost & ~suspects).any()


def _bf16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32).astype(bfloat16).view(np.uint16)


def _reference_inexact(p: np.ndarray, m: np.ndarray) -> bool:
    pf, mf = (x.view(bfloat16).astype(np.float32) for x in (p, m))
    d = pf - mf
    return not (np.array_equal(mf + d, pf) and np.array_equal(pf - d, mf))


@pytest.mark.parametrize("sub", [7, 64, 1 << 18])
def test_delta_block_matches_a_full_check_at_any_sub_block_size(sub, monkeypatch):
    monkeypatch.setattr(delta, "SUB_ELEMS", sub)
    rng = np.random.default_rng(3)
    base = rng.standard_normal((300, 5)).astype(np.float32)
    fine = _bf16(base + rng.standard_normal(base.shape).astype(np.float32) * 1e-3)
    other = _bf16(base)
    # exact zeros and values near zero put some elements outside the rule, all exact
    fine[::17, 0] = 0
    other[5:9] = _bf16(np.full((4, 5), 3e-9, np.float32))
    lossy_p, lossy_m = fine.copy(), other.copy()
    lossy_p[250, 2], lossy_m[250, 2] = _bf16(np.float32([1.0]))[0], _bf16(np.float32([2.0**-30]))[0]
    for p, m in ((fine, other), (lossy_p, lossy_m)):
        pos, neg = Arrays("BF16", t=p), Arrays("BF16", t=m)
        inexact: list[str] = []
        d = delta.delta_block(pos, neg, "t", 0, 300, inexact)
        want = p.view(bfloat16).astype(np.float32) - m.view(bfloat16).astype(np.float32)
        assert np.array_equal(d.view(np.uint32), want.view(np.uint32))
        assert bool(inexact) == _reference_inexact(p, m)
    assert _reference_inexact(lossy_p, lossy_m)  # the lossy pair really is lossy
    with pytest.raises(IncompatibleWeights, match=r"tensor t: θ\+ − θ− is not exact in float32 \(rows"):
        delta.delta_block(
            Arrays("BF16", t=lossy_p), Arrays("BF16", t=lossy_m), "t", 200, 300, [], strict=True
        )


def test_float32_sources_get_the_full_check():
    p = np.float32([[1.0, 2.0]])
    m = np.float32([[2.0**-30, 1.0]])
    inexact: list[str] = []
    delta.delta_block(Arrays("F32", t=p), Arrays("F32", t=m), "t", 0, 1, inexact)
    assert inexact == ["t"]


@pytest.mark.parametrize(
    "side,value,message",
    [
        ("p", np.nan, "positive weights: tensor t contains NaN or Inf"),
        ("m", np.inf, "negative weights: tensor t contains NaN or Inf"),
        ("both", 3e38, r"tensor t: θ\+ − θ− overflows float32"),
    ],
)
def test_non_finite_and_overflowing_differences_are_refused(side, value, message):
    p = _bf16(np.ones((4, 3), np.float32))
    m = p.copy()
    if side in ("p", "both"):
        p[2, 1] = _bf16(np.float32([value]))[0]
    if side in ("m", "both"):
        m[2, 1] = _bf16(np.float32([-value if side == "both" else value]))[0]
    with pytest.raises(IncompatibleWeights, match=message), np.errstate(over="ignore"):
        delta.delta_block(Arrays("BF16", t=p), Arrays("BF16", t=m), "t", 0, 4, [])
