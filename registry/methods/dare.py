"""DARE (Yu et al. 2023): drop each delta entry with rate p, rescale survivors by 1/(1−p).

The mask is drawn from a generator seeded by (seed, tensor name, term index), so the same
recipe always gives the same model, and another seed gives another.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np

from registry.methods import MergeMethod, Param


def mask_seed(seed: int, name: str, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}:{index}".encode()).digest()[:8], "little")


def drop_and_rescale(delta: np.ndarray, p: float, seed: int) -> np.ndarray:
    if p == 0:
        return delta.copy()
    keep = np.random.default_rng(seed).random(delta.shape) >= p
    return np.where(keep, delta / np.float32(1 - p), 0).astype(np.float32)


class Dare(MergeMethod):
    name = "dare"
    blockwise = False
    parameters: ClassVar[dict[str, Param]] = {
        "drop_rate": Param(float, 0.9, "probability p of dropping each delta entry", 0.0, 0.999),
        "seed": Param(int, 0, "seed of the drop masks", 0, 2**63 - 1),
    }

    def merge(self, name, base, deltas, weights):
        p = self.validate_parameters(self.params)
        acc = np.array(base, dtype=np.float32, copy=True)
        for i, (d, w) in enumerate(zip(deltas, weights, strict=True)):
            acc += np.float32(w) * drop_and_rescale(d, p["drop_rate"], mask_seed(p["seed"], name, i))
        return acc
