"""DARE (Yu et al. 2023): drop each delta entry with rate p, rescale survivors by 1/(1−p).

The drop mask is counter-based, so any block of any tensor can be drawn on its own: element
i (flat, row-major) of term j of tensor `name` is kept iff u ≥ round(p·2³²), where u is the
32-bit word i of the Philox-4×64 stream keyed by sha256(f"{seed}:{name}:{j}") (each 64-bit
output gives two words, low half first). The mask is the same whatever the block size or
the order in which blocks are merged, the same recipe always gives the same model, and
another seed, tensor or term gives another mask.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np

from registry.merging.methods.base import MergeMethod, Param

SLICE = 1 << 16  # elements per step inside a block: temporaries stay small
WORDS_PER_COUNTER = 8  # Philox-4×64: four 64-bit outputs, eight 32-bit words per counter step


def mask_key(seed: int, name: str, index: int) -> int:
    """The 128-bit Philox key of one term's mask in one tensor."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}:{index}".encode()).digest()[:16], "little")


def uniform_words(key: int, start: int, count: int) -> np.ndarray:
    """32-bit words start … start+count−1 of the counter-based stream `key`."""
    gen = np.random.Philox(key=key)
    first = start // WORDS_PER_COUNTER
    if first:
        gen.advance(first)
    skip = start - first * WORDS_PER_COUNTER
    raw = gen.random_raw((skip + count + 1) // 2)
    return raw.view("<u4")[skip : skip + count]


def keep_mask(seed: int, name: str, index: int, p: float, start: int, count: int) -> np.ndarray:
    """Elements start … start+count−1 of a term's keep mask (flat)."""
    threshold = min(round(p * 2**32), 2**32 - 1)
    return uniform_words(mask_key(seed, name, index), start, count) >= np.uint32(threshold)


class Dare(MergeMethod):
    name = "dare"
    parameters: ClassVar[dict[str, Param]] = {
        "drop_rate": Param(float, 0.9, "probability p of dropping each delta entry", 0.0, 0.999),
        "seed": Param(int, 0, "seed of the drop masks", 0, 2**63 - 1),
    }

    def merge_block(self, name, base, deltas, weights, state=None, start=0):
        """Element-wise, so computed a slice at a time (the mask is keyed by element index)."""
        p = self.validate_parameters(self.params)
        rate = p["drop_rate"]
        acc = np.array(base, dtype=np.float32, copy=True)
        flat = acc.reshape(-1)
        for i, (d, w) in enumerate(zip(deltas, weights, strict=True)):
            d = d.reshape(-1)
            for s in range(0, flat.size, SLICE):
                e = min(flat.size, s + SLICE)
                if rate == 0:
                    kept = d[s:e]
                else:
                    keep = keep_mask(p["seed"], name, i, rate, start + s, e - s)
                    kept = np.where(keep, d[s:e] / np.float32(1 - rate), np.float32(0))
                flat[s:e] += np.float32(w) * kept
        return acc
