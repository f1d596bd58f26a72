"""TIES-merging (Yadav et al. 2023): trim, elect sign, disjoint merge.

Each delta keeps its top `density` fraction by magnitude (per tensor) and is scaled by its
weight; the elected sign per parameter is the sign of the sum; the merged delta is the mean
of the deltas that agree with it, scaled by `lambda`.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from registry.methods import MergeMethod, Param


def trim(delta: np.ndarray, density: float) -> np.ndarray:
    flat = delta.ravel()
    k = math.ceil(density * flat.size)
    if k >= flat.size:
        return delta.copy()
    out = np.zeros_like(flat)
    if k > 0:
        keep = np.argpartition(np.abs(flat), flat.size - k)[flat.size - k :]
        out[keep] = flat[keep]
    return out.reshape(delta.shape)


class Ties(MergeMethod):
    name = "ties"
    blockwise = False
    parameters: ClassVar[dict[str, Param]] = {
        "density": Param(float, 0.2, "fraction of each delta kept, by magnitude", 0.0, 1.0),
        "lambda": Param(float, 1.0, "scale of the merged delta", -100.0, 100.0),
    }

    def merge(self, name, base, deltas, weights):
        p = self.validate_parameters(self.params)
        tau = np.stack([np.float32(w) * trim(d, p["density"]) for d, w in zip(deltas, weights, strict=True)])
        elected = np.sign(tau.sum(axis=0))
        agree = (np.sign(tau) == elected) & (tau != 0)
        count = agree.sum(axis=0)
        merged = np.where(agree, tau, 0).sum(axis=0) / np.maximum(count, 1)
        return (base + np.float32(p["lambda"]) * merged).astype(np.float32)
