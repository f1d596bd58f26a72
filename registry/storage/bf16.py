"""bfloat16 ↔ float32 with plain integer numpy passes: the same bits as ml_dtypes, faster.

Widening is exact: a bf16 pattern is the high half of its float32, so `bits << 16` is the
value. Narrowing rounds to nearest, ties to even, as ml_dtypes and torch do:

    bf16 = (x + 0x7FFF + ((x >> 16) & 1)) >> 16        on the uint32 pattern x

which is right for every finite float32 and for ±inf (a carry into the exponent gives the
next binade or inf, as rounding must). NaNs are the exception (a payload near the top wraps
the sum), and ml_dtypes turns every NaN into sign | 0x7FC0: a slice that holds anything
outside bf16's finite range (checked by its min and max) gets those NaNs set so afterwards.
tests/storage/test_bf16.py holds the proof against ml_dtypes (every bf16 pattern, every
float32 rounding case) and torch.

Why: ml_dtypes' casts are about twice as slow as these passes, which are numpy's SIMD loops
(AVX2 or AVX-512, whichever the CPU has); and importing ml_dtypes costs about half a
second, more than a 254M-parameter model's whole merge on two cores, so nothing on the
materialize path imports it. `benchmarks/bench_bf16_kernels.py` times the variants.
"""

from __future__ import annotations

import numpy as np

# float32 magnitude from which round-to-nearest-even to bf16 gives inf: half an ulp above
# bf16's largest finite value 0x7F7F (a tie, and 0x7F7F is odd, so it rounds up to inf)
OVERFLOW = float(np.array(0x7F7F8000, np.uint32).view(np.float32))
# elements per pass: a slice and its temporaries stay in the core's L2 cache
STEP = 1 << 16


def widen(raw: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """bf16 patterns (uint16, any shape) as float32 values (flat), exactly; into `out` if given
    (a flat uint32 or float32 buffer of the same size)."""
    flat = raw.reshape(-1)
    if out is None:
        out = np.empty(flat.size, np.uint32)
    np.left_shift(flat.view(np.uint16), 16, out=out.view(np.uint32), dtype=np.uint32)
    return out.view(np.float32)


def in_range(x: np.ndarray) -> bool:
    """Every float32 value rounds to a finite bf16 (no NaN, no inf, no overflow)."""
    return x.size == 0 or bool(x.min() > -OVERFLOW and x.max() < OVERFLOW)


def round_into(x: np.ndarray, out: np.ndarray, tmp: np.ndarray | None = None) -> bool:
    """Round float32 `x` (flat) to bf16 patterns in `out` (flat uint16), as ml_dtypes does;
    True when every result is finite. `tmp`: a uint32 scratch of at least STEP elements."""
    n = x.size
    bits = x.view(np.uint32)
    if tmp is None:
        tmp = np.empty(min(n, STEP), np.uint32)
    finite = True
    for a in range(0, n, STEP):
        b = min(n, a + STEP)
        xi, t, o = bits[a:b], tmp[: b - a], out[a:b]
        np.right_shift(xi, 16, out=t)
        np.bitwise_and(t, 1, out=t)
        np.add(t, xi, out=t)
        np.add(t, 0x7FFF, out=t)
        np.right_shift(t, 16, out=o, casting="unsafe")
        if not in_range(x[a:b]):  # NaN, inf or overflow: all give a non-finite bf16
            finite = False
            np.bitwise_and(xi, 0x7FFFFFFF, out=t)
            nan = np.flatnonzero(t > 0x7F800000)
            o[nan] = (xi[nan] >> 16) & 0x8000 | 0x7FC0  # ml_dtypes' NaN: the sign kept, quiet
    return finite


def narrow(x: np.ndarray) -> np.ndarray:
    """float32 values (any shape) as bf16 patterns (uint16, same shape), as ml_dtypes rounds."""
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    out = np.empty(flat.size, np.uint16)
    round_into(flat, out)
    return out.reshape(np.shape(x))
