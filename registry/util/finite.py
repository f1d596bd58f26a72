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


def all_finite(x: np.ndarray) -> bool:
    """Every element finite (float32, float16, bfloat16 or integer arrays)."""
    return bool(np.isfinite(x).all())
