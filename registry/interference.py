"""Cosine similarity between vectors of one base: global, per layer, per module.

One streaming pass: for every tensor and row block, the N vectors' blocks are stacked and
their Gram matrix accumulated, so data is read once (time ∝ N·size) and memory holds only
N blocks at a time. Cosines for any grouping follow from per-tensor Gram matrices.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from registry.store import StoredVector, chunk_rows

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


def gram(vectors: list[StoredVector], labels: list[str], shapes: dict[str, tuple[int, ...]]) -> Gram:
    per_tensor = {}
    for name, shape in sorted(shapes.items()):
        rows = shape[0] if shape else 1
        step = chunk_rows(shape)
        g = np.zeros((len(vectors), len(vectors)))
        for a in range(0, rows, step):
            b = min(rows, a + step)
            x = np.stack([v.read_rows(name, a, b).ravel() for v in vectors]).astype(np.float64)
            g += x @ x.T
        per_tensor[name] = g
    return Gram(labels, per_tensor)


def summary(g: Gram, i: int, j: int) -> dict:
    """Cosine of vectors i and j: global, per layer and per module."""
    return {
        "global": float(g.cosine()[i, j]),
        "per_layer": {k: float(c[i, j]) for k, c in g.grouped(layer_of).items()},
        "per_module": {k: float(c[i, j]) for k, c in g.grouped(module_of).items()},
    }
