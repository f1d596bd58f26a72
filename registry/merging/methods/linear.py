"""Task arithmetic, the paper's method: θ = θbase + Σ ηᵢ·φᵢ, accumulated in float32."""

from __future__ import annotations

import numpy as np

from registry.merging.methods.base import MergeMethod


class Linear(MergeMethod):
    name = "linear"

    def merge_block(self, name, base, deltas, weights, state=None, start=0):
        acc = np.array(base, dtype=np.float32, copy=True)
        for delta, w in zip(deltas, weights, strict=True):
            if w == 1.0:
                acc += delta  # the common case: no temporary for w·φ
            else:
                acc += np.float32(w) * delta
        return acc
