"""φ = θ+ − θ− for one row block, checked finite and exact at a fraction of a full check's cost.

Import's promise is that φ gives θ+ and θ− back bit for bit. Checking that with float
arithmetic costs two more passes over float32 blocks (θ− + φ == θ+ and θ+ − φ == θ−), more
than the subtraction itself. For 16-bit sources the exponents decide it instead: two bf16
values whose exponent fields differ by at most 15 (fp16: 12) have a difference that needs at
most 24 significant bits, so float32 holds it exactly (proof in `_EXACT_GAP`'s comment). A
cheap pass over the raw 16-bit patterns finds the few elements outside that rule (values near
zero, exact zeros); only those get the float check. float32 sources keep the full check.
"""

from __future__ import annotations

import math

import numpy as np

from registry.errors import IncompatibleWeights
from registry.storage.tensor_io import TensorReader, to_f32

# Exponent-field mask and the largest field gap with an exact float32 difference. For fields
# f_p, f_m (a subnormal's field 0 counted as 1, which only shrinks its ulp's bound), |p − m| <
# 2^(max f − bias + 2) and both are multiples of the smaller ulp 2^(min f − bias − mantissa),
# so |p − m| is fewer than 2^(gap + mantissa + 2) such ulps: ≤ 2^24 needs gap ≤ 22 − mantissa
# (bf16: 7 mantissa bits → 15; fp16: 10 → 12; a safe bound, one short of the tight one). Zeros
# are multiples of every ulp; overflow and NaN/Inf are caught by the finiteness check first.
_EXACT_GAP = {"BF16": (0x7F80, 15 << 7), "F16": (0x7C00, 12 << 10)}


# rows are processed in sub-blocks of about this many elements, so that every pass over them
# (read, widen, subtract, checks) runs in the core's cache: about 1.6× faster than whole blocks
SUB_ELEMS = 1 << 18


def delta_block(
    pos: TensorReader, neg: TensorReader, name: str, a: int, b: int, inexact: list[str], strict: bool = False
) -> np.ndarray:
    """Rows [a, b) of φ in float32; NaN/Inf refused, inexact tensors appended to `inexact`."""
    tag_p, tag_m = pos.spec(name).tag, neg.spec(name).tag
    shape = pos.spec(name).shape
    row = math.prod(shape[1:]) if len(shape) > 1 else 1
    out = np.empty((b - a, *shape[1:]) if shape else (), np.float32)
    flat = out.reshape(-1)
    step = max(1, SUB_ELEMS // max(row, 1))
    exact = True
    for s in range(a, b, step):
        e = min(b, s + step)
        raw_p, raw_m = pos.read_rows(name, s, e), neg.read_rows(name, s, e)
        p, m = to_f32(raw_p, tag_p).reshape(-1), to_f32(raw_m, tag_m).reshape(-1)
        d = flat[(s - a) * row : (e - a) * row]
        np.subtract(p, m, out=d)
        # NaN and ±Inf propagate through a difference, so a finite φ means finite θ±
        if not np.isfinite(d).all():
            for role, x in (("positive", p), ("negative", m)):
                if not np.isfinite(x).all():
                    raise IncompatibleWeights(f"{role} weights: tensor {name} contains NaN or Inf")
            raise IncompatibleWeights(f"tensor {name}: θ+ − θ− overflows float32 (rows {s}–{e})")
        if exact:
            suspects = _outside_exact_rule(raw_p, raw_m, tag_p) if tag_p == tag_m else None
            if suspects is not None:
                p, m, d = p[suspects], m[suspects], d[suspects]
            # lossless means exact both ways: θ− + φ gives θ+ back and θ+ − φ gives θ− back
            # (m + d == p alone passes p = 1, m = 2⁻³⁰, where φ = 1 has lost m entirely)
            exact = np.array_equal(m + d, p) and np.array_equal(p - d, m)
            if not exact:
                inexact.append(name)
                if strict:
                    raise IncompatibleWeights(
                        f"tensor {name}: θ+ − θ− is not exact in float32 (rows {s}–{e}); "
                        "the vector would not give θ+ and θ− back bit for bit"
                    )
    return out


def _outside_exact_rule(raw_p: np.ndarray, raw_m: np.ndarray, tag: str) -> np.ndarray | None:
    """Flat positions whose exponent gap the rule cannot vouch for (None: not a 16-bit float)."""
    if tag not in _EXACT_GAP:
        return None
    mask, gap = _EXACT_GAP[tag]
    ep = np.bitwise_and(raw_p.reshape(-1).view(np.uint16), mask)
    em = np.bitwise_and(raw_m.reshape(-1).view(np.uint16), mask)
    # |ep − em| > gap in one unsigned compare: the difference wraps, shifted by gap
    np.subtract(ep, em, out=ep)
    np.add(ep, gap, out=ep)
    return np.flatnonzero(ep > 2 * gap)
