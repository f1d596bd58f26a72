"""Numbers a person typed: read as they meant them, refused in one line when not finite.

YAML 1.1 (PyYAML) reads `5e-1` and `1e3` as strings (its float needs a dot and a signed
exponent), and `.inf`/`.nan` as floats; every number the registry computes with must also
stay finite once stored as float32 (1e39 is finite in float64, inf in float32).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

# a plain decimal number: no `nan`, `inf`, `0x…` or `1_000` (float() would take some of those)
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def as_number(value: Any, what: str) -> float | int:
    """`value` as a number: ints and floats as they are, decimal strings parsed strictly."""
    if isinstance(value, bool):
        raise ValueError(
            f"{what} must be a finite number, not {value!r} (YAML reads true/false/yes/no/on/off as booleans)"
        )
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return float(value)  # e.g. 5e-1: a string under YAML 1.1, the number 0.5 to a person
    raise ValueError(f"{what} must be a finite number, not {value!r}")


def finite32(value: float) -> bool:
    """Whether `value` is finite and stays finite when stored as float32."""
    if not math.isfinite(value):
        return False
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.float32(value)))


def check_finite32(value: Any, what: str) -> float:
    """`value` as a float, refused in one line unless finite as float32."""
    number = as_number(value, what)
    try:
        ok = finite32(float(number))
    except OverflowError:  # an int beyond float64
        ok = False
    if not ok:
        raise ValueError(f"{what} must be finite as float32 (|x| ≤ 3.4e38), not {number!r}")
    return float(number)
