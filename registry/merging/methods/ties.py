"""TIES-merging (Yadav et al. 2023): trim, elect sign, disjoint merge.

Each delta keeps its top `density` fraction by magnitude (per tensor) and is scaled by its
weight; the elected sign per parameter is the sign of the sum; the merged delta is the mean
of the deltas that agree with it, scaled by `lambda`. Arithmetic is float32, terms summed
in recipe order.

Trim, exactly and in flat memory: with k = ⌈density·n⌉, the threshold t is the k-th largest
|x| of the tensor, and every element with |x| ≥ t is kept. Ties at t are all kept, so the
result depends on neither block size nor element order (a tensor with several elements of
magnitude exactly t may keep slightly more than k). t is found by an exact two-pass radix
select over the float32 bit patterns of |x|, which order like the values as uint32: pass 1
counts the high 16 bits (65536 bins) and picks the bucket holding the k-th largest; pass 2
counts the low 16 bits inside that bucket. Both passes stream row blocks; the merge pass
then works block by block.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from registry.merging.methods.base import DeltaReader, InMemory, MergeMethod, Param

BINS = 1 << 16
SLICE = 1 << 16  # elements per step inside a block: temporaries of 256 KiB stay in cache
KEEP_ALL, KEEP_NONE = 0, 0xFFFFFFFF  # thresholds on |x|'s bits: ≥ 0 keeps all; NaN-free ≥ max keeps none


def magnitude_bits(x: np.ndarray) -> np.ndarray:
    """|x| as uint32 bit patterns: monotone in |x| for every non-NaN float32."""
    return np.bitwise_and(np.ascontiguousarray(x, dtype=np.float32).reshape(-1).view(np.uint32), 0x7FFFFFFF)


def _select(counts: np.ndarray, k: int) -> tuple[int, int]:
    """The bin holding the k-th largest (1-based) and how many larger ones precede it."""
    above = np.cumsum(counts[::-1])[::-1]  # above[b]: count in bins ≥ b
    b = int(np.flatnonzero(above >= k)[-1])
    return b, int(above[b] - counts[b])


def thresholds(reader: DeltaReader, density: float) -> list[int]:
    """Per delta, the bit pattern of its k-th largest |x| (k = ⌈density·n⌉), in two passes."""
    n = reader.size
    k = math.ceil(density * n)
    if k >= n:
        return [KEEP_ALL] * reader.terms
    if k <= 0:
        return [KEEP_NONE] * reader.terms

    def high_counts(deltas):
        out = [np.zeros(BINS, np.int64) for _ in deltas]
        for d, counts in zip(deltas, out, strict=True):
            for s in range(0, d.size, SLICE):
                counts += np.bincount(magnitude_bits(d[s : s + SLICE]) >> 16, minlength=BINS)
        return out

    high = None
    for counts in reader.map(high_counts):
        high = counts if high is None else [h + c for h, c in zip(high, counts, strict=True)]
    picks = [_select(h, k) for h in high]
    buckets = np.array([b for b, _ in picks], np.uint32)

    def low_counts(deltas):
        out = [np.zeros(BINS, np.int64) for _ in deltas]
        for d, bucket, counts in zip(deltas, buckets, out, strict=True):
            for s in range(0, d.size, SLICE):
                bits = magnitude_bits(d[s : s + SLICE])
                counts += np.bincount(bits[(bits >> 16) == bucket] & 0xFFFF, minlength=BINS)
        return out

    low = None
    for counts in reader.map(low_counts):
        low = counts if low is None else [h + c for h, c in zip(low, counts, strict=True)]
    result = []
    for (bucket, larger), lc in zip(picks, low, strict=True):
        j, _ = _select(lc, k - larger)
        result.append((bucket << 16) | j)
    return result


def trim(delta: np.ndarray, density: float) -> np.ndarray:
    """Keep the top ⌈density·n⌉ magnitudes of a whole tensor (ties at the threshold kept)."""
    (t,) = thresholds(InMemory([delta]), density)
    return np.where(magnitude_bits(delta).reshape(delta.shape) >= t, delta, np.float32(0))


class Ties(MergeMethod):
    name = "ties"
    parameters: ClassVar[dict[str, Param]] = {
        "density": Param(float, 0.2, "fraction of each delta kept, by magnitude", 0.0, 1.0),
        "lambda": Param(float, 1.0, "scale of the merged delta", -100.0, 100.0),
    }

    def prepare(self, name: str, reader: DeltaReader, rows: int) -> Any:
        return thresholds(reader, self.validate_parameters(self.params)["density"])

    def merge_block(self, name, base, deltas, weights, state, start=0):
        """Element-wise, so computed a slice at a time: temporaries stay small whatever the block."""
        lam = np.float32(self.validate_parameters(self.params)["lambda"])
        base = np.asarray(base, dtype=np.float32)
        out = np.empty(base.shape, np.float32)
        flat, ds = out.reshape(-1), [d.reshape(-1) for d in deltas]
        for s in range(0, flat.size, SLICE):
            e = s + SLICE
            flat[s:e] = _merge(base.reshape(-1)[s:e], [d[s:e] for d in ds], weights, state, lam)
        return out


def _merge(base, deltas, weights, state, lam):
    """TIES on flat float32 slices: trim by threshold, elect sign, disjoint mean."""
    taus = []
    for d, w, t in zip(deltas, weights, state, strict=True):
        kept = np.where(magnitude_bits(d) >= t, d, np.float32(0))
        taus.append(np.multiply(kept, np.float32(w), dtype=np.float32))
    total = taus[0].copy()
    for tau in taus[1:]:
        total += tau
    elected = np.sign(total)
    num = np.zeros_like(total)
    count = np.zeros_like(total)
    for tau in taus:
        agree = (np.sign(tau) == elected) & (tau != 0)
        num += np.where(agree, tau, np.float32(0))
        count += agree
    merged = num / np.maximum(count, np.float32(1))
    return base + lam * merged
