"""Finite as float32: the test every number that reaches a merged weight must pass.

A float64 such as 1e39 is finite in Python but becomes inf as float32, which is how merges
compute; so weights, method parameters and step sizes are checked against float32's range.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)


def finite32(x: Any) -> bool:
    """True for a real number (not bool) that is finite once rounded to float32."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return False
    try:
        v = float(x)
    except OverflowError:  # an int beyond float64
        return False
    # values just above FLOAT32_MAX still round down to it; the first that rounds to inf is
    # FLOAT32_MAX + half an ulp (2**103)
    return math.isfinite(v) and abs(v) < FLOAT32_MAX + 2.0**103


# bits of |x| (sign masked off) at or above which a value is inf or NaN
_BITS = {"float32": (np.uint32, 0x7FFFFFFF, 0x7F800000), "float16": (np.uint16, 0x7FFF, 0x7C00),
         "bfloat16": (np.uint16, 0x7FFF, 0x7F80)}  # fmt: skip
_STEP = 1 << 16  # elements per pass: the scratch stays in cache


def all_finite(x: np.ndarray) -> bool:
    """Every element finite. For float32, float16 and bfloat16 by the exponent bits, in
    cache-sized slices (about a third of np.isfinite's cost, no array-sized temporary)."""
    spec = _BITS.get(x.dtype.name)
    if spec is None:
        return bool(np.isfinite(x).all()) if x.dtype.kind == "f" else True
    utype, mask, limit = spec
    flat = np.ascontiguousarray(x).reshape(-1).view(utype)
    tmp = np.empty(min(_STEP, flat.size), utype)
    for a in range(0, flat.size, _STEP):
        part = flat[a : a + _STEP]
        t = tmp[: part.size]
        np.bitwise_and(part, mask, out=t)
        if t.max() >= limit:
            return False
    return True
