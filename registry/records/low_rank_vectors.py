"""Vectors in low-rank form: factors checked, written as arrays, described by their expansion.

`add-preference --lora-rank r` hands `store_vector` the factors of every LoRA-targeted
weight (φ = [s·B₊, −s·B₋]·[A₊; A₋], see storage.low_rank); `import_low_rank`
(records.vector_import) does the same for factors a caller already has. The database records each tensor as it would a dense one
(shape, norm and sha256 of the expanded φ, so a dense vector of the same values has the same
digest) plus `factors`: the rank and the sha256 of each factor array.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from registry.errors import IncompatibleWeights
from registry.storage.low_rank import expand, factor_arrays
from registry.storage.tensor_io import FLOATS, TensorReader, row_blocks
from registry.storage.vector_store import sum_squares
from registry.util.digests import ArrayHasher

Factors = dict[str, tuple[np.ndarray, np.ndarray]]  # tensor name -> (B: out × k, A: k × in)


def check_factors(base_w: TensorReader, factors: Factors) -> Factors:
    """Float32 copies of the factors, refused (one line) unless each pair chains to its tensor."""
    out: Factors = {}
    names = set(base_w.names())
    for name, (b, a) in sorted(factors.items()):
        if name not in names or base_w.spec(name).tag not in FLOATS:
            raise IncompatibleWeights(f"low-rank factors name {name}, no float tensor of the base")
        b, a = np.ascontiguousarray(b, np.float32), np.ascontiguousarray(a, np.float32)
        shape = tuple(base_w.spec(name).shape)
        if b.ndim != 2 or a.ndim != 2 or b.shape[1] != a.shape[0] or (b.shape[0], a.shape[1]) != shape:
            raise IncompatibleWeights(
                f"tensor {name}: factors {list(b.shape)} · {list(a.shape)} do not give its shape {list(shape)}"
            )
        if b.shape[1] < 1:
            raise IncompatibleWeights(f"tensor {name}: factors of rank 0")
        if not (np.isfinite(b).all() and np.isfinite(a).all()):
            raise IncompatibleWeights(f"tensor {name}: factors contain NaN or Inf")
        out[name] = (b, a)
    return out


def _rows(x: np.ndarray, a: int, c: int) -> np.ndarray:
    return x[a:c]


def factor_blocks(name: str, b: np.ndarray, a: np.ndarray) -> Iterator[tuple[str, tuple, Iterator]]:
    """The writer's entries for one low-rank tensor: its arrays A and B, row block by row block."""
    for array, x in zip(factor_arrays(name), (a, b), strict=True):
        yield array, x.shape, (functools.partial(_rows, x, s, e) for s, e in row_blocks(x.shape))


def expanded_record(name: str, b: np.ndarray, a: np.ndarray, factor_digests: dict[str, str]) -> dict:
    """The tensor row of a low-rank tensor: sha256 and norm of φ = B·A as a dense array would
    have them (the same blocks, the same sums), and its factors' rank and digests."""
    shape = (b.shape[0], a.shape[1])
    h, squares = ArrayHasher(), 0.0
    for s, e in row_blocks(shape):
        block = expand(b[s:e], a)
        h.update(block)
        squares += sum_squares(block)
    return {
        "name": name,
        "shape": list(shape),
        "source_dtype": "float32",
        "norm": squares**0.5,
        "sha256": h.hexdigest(),
        "factors": {"rank": int(b.shape[1]), "sha256": factor_digests},
    }


def vector_rank(tensors: list[dict[str, Any]]) -> int | None:
    """A vector's rank: the largest of its low-rank tensors' (None when it has none)."""
    ranks = [t["factors"]["rank"] for t in tensors if t.get("factors")]
    return max(ranks) if ranks else None
