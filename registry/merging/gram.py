"""Cosine similarity between vectors of one base: global, per layer, per module.

One streaming pass: for every tensor and row block, the N vectors' blocks are read and
their Gram matrix accumulated in float64, so data is read once (time ∝ N·size) and memory
holds only a few blocks per vector. Blocks run on the same ordered thread pipeline as
materialize (decoding, the float64 products and file reads release the GIL) and their
partial Gram matrices are summed in a fixed order, so the result does not depend on timing.
Cosines for any grouping follow from per-tensor Gram matrices.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from registry.merging.methods.orthogonal import residuals
from registry.storage.tensor_io import row_blocks
from registry.storage.vector_store import StoredVector
from registry.util.pipeline import ordered

_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def layer_of(name: str) -> str:
    m = _LAYER.search(name)
    return f"layer.{int(m.group(1))}" if m else "other"


def module_of(name: str) -> str:
    """`model.layers.3.self_attn.q_proj.weight` → `self_attn.q_proj.weight`."""
    m = _LAYER.search(name)
    return name[m.end() :] if m else name


@dataclass
class Gram:
    labels: list[str]
    per_tensor: dict[str, np.ndarray]  # tensor name -> N×N float64 Gram matrix

    def _cos(self, names: list[str]) -> np.ndarray:
        g = sum((self.per_tensor[n] for n in names), np.zeros((len(self.labels),) * 2))
        norms = np.sqrt(np.clip(np.diag(g), 0, None))
        denom = np.outer(norms, norms)
        return np.divide(g, denom, out=np.zeros_like(g), where=denom > 0)

    def cosine(self) -> np.ndarray:
        return self._cos(sorted(self.per_tensor))

    def grouped(self, key: Callable[[str], str]) -> dict[str, np.ndarray]:
        groups: dict[str, list[str]] = {}
        for n in self.per_tensor:
            groups.setdefault(key(n), []).append(n)
        return {k: self._cos(v) for k, v in sorted(groups.items(), key=lambda kv: _natural(kv[0]))}


def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


SLICE = 1 << 15  # elements per float64 product: N×SLICE×8 bytes stays in cache


def _block_gram(vectors: list[StoredVector], name: str, a: int, b: int) -> tuple[str, np.ndarray]:
    rows = [v.read_rows(name, a, b).reshape(-1) for v in vectors]
    n, size = len(rows), rows[0].size
    g = np.zeros((n, n))
    x = np.empty((n, min(SLICE, size)))
    for s in range(0, size, SLICE):
        m = min(SLICE, size - s)
        for i, r in enumerate(rows):
            x[i, :m] = r[s : s + m]  # widened to float64 while copied
        g += x[:, :m] @ x[:, :m].T
    return name, g


def gram(vectors: list[StoredVector], labels: list[str], shapes: dict[str, tuple[int, ...]]) -> Gram:

    per_tensor = {name: np.zeros((len(vectors), len(vectors))) for name in sorted(shapes)}
    if not vectors:
        return Gram(labels, per_tensor)
    remote = getattr(vectors[0].blobs, "remote", False)
    workers = 8 if remote else max(2, os.cpu_count() or 2)
    jobs = (
        functools.partial(_block_gram, vectors, name, a, b)
        for name, shape in sorted(shapes.items())
        for a, b in row_blocks(shape)
    )
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gram") as pool:
        for name, g in ordered(pool, jobs, 2 * workers):
            per_tensor[name] += g
    return Gram(labels, per_tensor)


def summary(g: Gram, i: int, j: int) -> dict:
    """Cosine of vectors i and j: global, per layer and per module."""
    return {
        "global": float(g.cosine()[i, j]),
        "per_layer": {k: float(c[i, j]) for k, c in g.grouped(layer_of).items()},
        "per_module": {k: float(c[i, j]) for k, c in g.grouped(module_of).items()},
    }


def orthogonal_removed(g: Gram) -> dict[str, float]:
    """Per vector (in the Gram's order), the share of its norm `orthogonal` merging removes.

    Projections are per tensor, as the method does them: 1 − ‖Σₜ uₖ,ₜ‖ / ‖φₖ‖ over all tensors.
    """
    kept = np.zeros(len(g.labels))
    total = np.zeros(len(g.labels))
    for name in sorted(g.per_tensor):
        gt = g.per_tensor[name]
        r = residuals(gt)
        kept += np.einsum("ki,ij,kj->k", r, gt, r)
        total += np.diag(gt)
    frac = np.divide(
        np.sqrt(np.clip(kept, 0, None)), np.sqrt(total), out=np.ones_like(total), where=total > 0
    )
    return {label: float(1.0 - f) for label, f in zip(g.labels, frac, strict=True)}
