"""Interference-aware merging: each later term loses its projection onto the earlier ones.

Per tensor, Gram–Schmidt on the deltas in term order: u₁ = φ₁, uₖ = φₖ − proj(φₖ, span(φ₁…φₖ₋₁)),
θ = θbase + Σ ηₖ·uₖ. The projections are computed from the float64 Gram matrix G = ΦΦᵀ alone
(`coefficients`), so θ is a plain weighted sum of the raw deltas whose weights a streaming pass
over Gram blocks can supply; the sum is then accumulated in float32 like `linear`.
"""

from __future__ import annotations

import math

import numpy as np

from registry.merging.methods.base import DeltaReader, InMemory, MergeMethod
from registry.storage.tensor_io import block_rows

# a term whose residual keeps less than this share of its squared norm is fully dependent
DEPENDENT = 1e-12


def residuals(gram: np.ndarray) -> np.ndarray:
    """R (n×n): row k holds the coefficients of uₖ over the raw deltas φ₁…φₙ.

    Modified Gram–Schmidt in coefficient space, inner products ⟨a, b⟩ = aᵀ G b, float64
    throughout; a pure, deterministic function of G.
    """
    g = np.asarray(gram, dtype=np.float64)
    n = g.shape[0]
    r = np.eye(n)
    basis: list[tuple[np.ndarray, float]] = []
    for k in range(n):
        c = r[k].copy()
        for q, qq in basis:
            c -= (q @ g @ c) / qq * q
        norm2 = float(c @ g @ c)
        if norm2 <= DEPENDENT * max(float(g[k, k]), 0.0) or norm2 <= 0.0:
            c[:] = 0.0
        else:
            basis.append((c, norm2))
        r[k] = c
    return r


def coefficients(gram: np.ndarray, weights: list[float]) -> np.ndarray:
    """Effective weight of each raw delta: Σₖ ηₖ·R[k] (float64)."""
    return np.asarray(weights, dtype=np.float64) @ residuals(gram)


def removed_fraction(gram: np.ndarray) -> np.ndarray:
    """Per term, 1 − ‖uₖ‖/‖φₖ‖: the share of its norm the projection removes (0 for the first)."""
    g = np.asarray(gram, dtype=np.float64)
    r = residuals(g)
    kept = np.einsum("ki,ij,kj->k", r, g, r)
    norms = np.diag(g)
    out = np.zeros(len(norms))
    ok = norms > 0
    out[ok] = 1.0 - np.sqrt(np.clip(kept[ok], 0, None) / norms[ok])
    return out


class Orthogonal(MergeMethod):
    """Block-wise: `prepare` streams the tensor once to accumulate G (float64, one block Gram
    after another in row order), then every block is a weighted sum like `linear`.

    The blocks are the store's chunk rows in both paths (in-memory merges use the same
    partition), so materialize and `merged_state` sum G identically, bit for bit.
    """

    name = "orthogonal"

    def prepare(self, name: str, reader: DeltaReader, rows: int) -> np.ndarray:
        g = np.zeros((reader.terms, reader.terms))
        for block in reader.map(_block_gram):
            g += block
        return g

    def merge_block(self, name, base, deltas, weights, state, start):
        acc = np.array(base, dtype=np.float32, copy=True)
        eff = coefficients(state, weights).astype(np.float32) if deltas else []
        for delta, w in zip(deltas, eff, strict=True):
            if w != 0.0:
                acc += w * delta
        return acc

    def merge(self, name, base, deltas, weights):
        shape = tuple(base.shape)
        row_elems = max(1, math.prod(shape[1:]) if len(shape) > 1 else 1)
        reader = InMemory(deltas, block=block_rows(shape) * row_elems)
        rows = shape[0] if shape else 1
        return self.merge_block(name, base, deltas, weights, self.prepare(name, reader, rows), 0)


def _block_gram(blocks: list[np.ndarray]) -> np.ndarray:
    x = np.stack(blocks).astype(np.float64)
    return x @ x.T
