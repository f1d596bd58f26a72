"""Low-rank tensors of a vector: φ = B·A kept as its two factors, expanded one row block at a time.

A LoRA-trained vector is φ = s·(B₊A₊ − B₋A₋) = [s·B₊, −s·B₋] · [A₊; A₋] for every targeted
linear weight: rank at most 2r, exactly. The store keeps such a tensor `NAME` as two float32
arrays, `NAME.lora_B` (out × k) and `NAME.lora_A` (k × in), both lossless (split16), and
readers see `NAME` itself: rows [a, b) are B[a:b] · A, computed on demand.

The expansion is defined element by element, so it is the same on every machine and for
every row block: φ[i, j] = ((B[i,0]·A[0,j] + B[i,1]·A[1,j]) + …) + B[i,k−1]·A[k−1,j], each
product and each sum rounded to float32 in that order (numpy's elementwise multiply and add;
no BLAS, whose summation order depends on the CPU and on the block's shape). That makes the
expanded φ reproducible bit for bit: its sha256 (what the database records for the tensor,
as for a dense one) is checked on any host, and a dense vector holding exactly these values
has the same digest and materializes to the same bytes.
"""

from __future__ import annotations

import numpy as np

FACTOR_A, FACTOR_B = ".lora_A", ".lora_B"


def factor_arrays(name: str) -> tuple[str, str]:
    """The store's arrays (A, B) of low-rank tensor `name`."""
    return name + FACTOR_A, name + FACTOR_B


def logical_names(arrays: list[str]) -> tuple[list[str], set[str]]:
    """Tensor names from a group's array names (factor pairs fold into their tensor), and the
    set of those that are low-rank. A lone factor stays an array name (a damaged group)."""
    present = set(arrays)
    low = {
        a.removesuffix(FACTOR_A)
        for a in arrays
        if a.endswith(FACTOR_A) and a.removesuffix(FACTOR_A) + FACTOR_B in present
    }
    low -= present  # a dense array of that very name wins: never shadow real data
    folded = {n for name in low for n in factor_arrays(name)}
    return sorted((present - folded) | low), low


def expand(b_rows: np.ndarray, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """B[rows] · A in float32, in the fixed elementwise order the module docstring defines."""
    b_rows = np.ascontiguousarray(b_rows, dtype=np.float32)
    a = np.ascontiguousarray(a, dtype=np.float32)
    rows, k = b_rows.shape
    if a.shape[0] != k:
        raise ValueError(f"factor shapes do not chain: B has {k} columns, A has {a.shape[0]} rows")
    acc = np.zeros((rows, a.shape[1]), np.float32) if out is None else out
    if k == 0:
        acc[...] = 0.0
        return acc
    np.multiply(b_rows[:, 0:1], a[0:1, :], out=acc)
    tmp = np.empty_like(acc)
    for j in range(1, k):
        np.multiply(b_rows[:, j : j + 1], a[j : j + 1, :], out=tmp)
        np.add(acc, tmp, out=acc)
    return acc


def stack(terms: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Σ Bᵢ·Aᵢ as one factor pair [B₁, B₂, …] · [A₁; A₂; …] (what a LoRA pair difference is)."""
    b = np.concatenate([np.asarray(t[0], np.float32) for t in terms], axis=1)
    a = np.concatenate([np.asarray(t[1], np.float32) for t in terms], axis=0)
    return b, a


def factor_nbytes(shape: tuple[int, int], rank: int) -> int:
    """float32 bytes of the two factors of an out × in tensor at `rank`."""
    return 4 * rank * (shape[0] + shape[1])
