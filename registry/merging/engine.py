"""The streaming merge engine: a plan of tensors merged one row block at a time.

Tensors stream one row block at a time (aligned with the store's chunks), so memory stays
flat whatever the model size. The linear method (the paper's) reads split16 chunks without
widening φ (`linear_block`); every other method merges float32 blocks (`MergeMethod`).
`release.materialize` builds a plan and writes its output folder.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from registry.errors import IntegrityError
from registry.merging.methods import MergeMethod
from registry.merging.methods.linear import Linear
from registry.storage import bf16
from registry.storage.tensor_io import (
    FLOATS,
    STORAGE,
    TAG_NAMES,
    SafetensorsFolder,
    TensorReader,
    TensorSpec,
    from_f32,
    row_blocks,
    to_f32,
)
from registry.storage.vector_store import StoredVector, chunk_rows
from registry.util.finite import all_finite
from registry.util.pipeline import ordered

T = TypeVar("T")
DEFAULT_SHARD_BYTES = 2 << 30
# sees every merged block once it is rounded: (tensor name, base block as stored, the base's
# tag, the float32 merge, the output block, the output tag); called from worker threads
BlockObserver = Callable[[str, np.ndarray, str, np.ndarray, np.ndarray, str], None]


@dataclass
class MergePlan:
    base: SafetensorsFolder
    vectors: list[StoredVector]
    weights: list[float]
    method: MergeMethod
    out_tag: str
    copy_files: list[Path]
    card: str | Future[str]
    lock: dict[str, Any]
    shard_bytes: int = DEFAULT_SHARD_BYTES
    on_bytes: Callable[[int], None] | None = None
    # checks that run beside the merge; the output is renamed into place only if all pass
    checks: list[Future[None]] = field(default_factory=list)
    durable: bool = False
    workers: int = 2
    tensor_names: set[str] | None = None  # the base's float tensors (else the store's listing)
    observe: BlockObserver | None = None  # e.g. release.deploy_rounding's tally; never changes a value
    vector_names: set[str] = field(init=False)

    def __post_init__(self) -> None:
        if self.tensor_names is not None:
            self.vector_names = set(self.tensor_names)
        else:
            self.vector_names = set(self.vectors[0].names()) if self.vectors else set()

    def out_specs(self) -> list[TensorSpec]:
        out = []
        for n in self.base.names():
            s = self.base.spec(n)
            out.append(TensorSpec(n, self.out_tag if s.tag in FLOATS else s.tag, s.shape))
        return out

    def jobs(self, out: TensorSpec) -> Iterator[Callable[[], np.ndarray]]:
        """One job per row block (aligned with the store's chunks): read, merge, round.

        A method's pre-pass (`prepare`, e.g. TIES's thresholds) streams the tensor's deltas
        first, on a pool of its own; every built-in method then merges block by block.
        """
        src = self.base.spec(out.name)
        rows = src.shape[0] if src.shape else 1
        merged = out.name in self.vector_names
        if not merged and src.tag == out.tag:
            for a, b in src.row_blocks():
                yield functools.partial(self.base.read_rows, out.name, a, b)
            return
        step = chunk_rows(src.shape) if merged and self.method.blockwise else rows
        state = None
        if merged:
            state = self.method.prepare(out.name, StoreDeltas(self.vectors, out.name, self.workers), rows)
        for a in range(0, rows, step):
            yield functools.partial(self._block, out, src, merged, state, a, min(rows, a + step))

    def _block(
        self, out: TensorSpec, src: TensorSpec, merged: bool, state: Any, a: int, b: int
    ) -> np.ndarray:
        block, finite = None, None
        if merged and type(self.method) is Linear:
            fused = linear_block(
                self.base, self.vectors, self.weights, out.name, a, b, out.tag, self.observe
            )  # observed there, sub-block by sub-block
            if fused is not None:
                block, finite = fused
        if block is None:
            raw = self.base.read_rows(out.name, a, b)
            base = to_f32(raw, src.tag)
            if merged:
                if self.observe is not None and base is raw:  # a method may sum in place
                    base = base.copy()
                deltas = [v.read_rows(out.name, a, b).reshape(base.shape) for v in self.vectors]
                start = a * (src.numel // rows_of(src.shape))
                base = self.method.merge_block(out.name, base, deltas, self.weights, state, start)
            block = from_f32(base, out.tag)
            if merged and self.observe is not None:
                self.observe(out.name, raw, src.tag, base, block, out.tag)
        if merged and finite is None:
            finite = all_finite(block)
        if merged and not finite:  # checked as it streams: the folder is never renamed in
            raise IntegrityError(
                f"the merge gives values that are not finite in {TAG_NAMES.get(out.tag, out.tag)} "
                f"(tensor {out.name}, rows {a}-{b}): weights too large for the output dtype? nothing written"
            )
        return block


# a linear block is summed in sub-blocks of about this many elements, so that each pass over
# them (widen, add, patch, round) runs in the core's cache
SUB_ELEMS = 1 << 18


def linear_block(
    base: TensorReader,
    vectors: list,
    weights: list[float],
    name: str,
    a: int,
    b: int,
    out_tag: str,
    observe: BlockObserver | None = None,
) -> tuple[np.ndarray, bool] | None:
    """Linear.merge_block on rows [a, b), bit for bit, reading split16 chunks without widening φ
    first; returns (the block in `out_tag`, whether every output value is finite).

    acc += w·φ is done as acc += w·hi (hi: φ's high halves, an exact bf16) for every element,
    then the elements whose φ has a non-zero low half are recomputed from their old sum with
    the exact φ — the same float32 operations on the same values as the reference. A dense
    low plane (φ of float32 master weights) is or-ed into the widened high halves per
    sub-block instead: the exact φ, still in cache. bf16 is widened and rounded with integer
    passes (`storage.bf16`: ml_dtypes' bits, numpy's SIMD loops, the GIL released). None when
    a vector's chunk is not split16 (the first store format; the caller then merges in
    float32). `observe` sees each rounded sub-block while it is in cache.
    """

    terms = []
    for slot, (v, w) in enumerate(zip(vectors, weights, strict=True)):
        p = v.read_parts(name, a, b, slot)
        if p is None:  # the first store format
            return None
        terms.append((p.hi, p.low_halves(), np.float32(w)))
    spec = base.spec(name)
    row = math.prod(spec.shape[1:]) if len(spec.shape) > 1 else 1
    out = np.empty((b - a) * row, STORAGE[out_tag])
    step = max(1, SUB_ELEMS // row)
    size = min(step * row, (b - a) * row)
    acc_buf = np.empty(size, np.uint32) if spec.tag == "BF16" else None  # the sum, in cache
    phi_buf = np.empty(size, np.uint32)  # one term's φ (or w·φ), widened
    tmp = np.empty(min(size, bf16.STEP), np.uint32)
    finite = True
    for s in range(a, b, step):
        e = min(b, s + step)
        lo, hi_end = (s - a) * row, (e - a) * row
        n = hi_end - lo
        raw = base.read_rows(name, s, e)
        if acc_buf is not None:
            acc = bf16.widen(raw, acc_buf[:n])
        else:
            acc = to_f32(raw, spec.tag).reshape(-1)  # fresh: summed in place
            if observe is not None and spec.tag == "F32":
                acc = acc.copy()  # the observer compares against the base: keep it
        for hi, low, w in terms:
            phi = phi_buf[:n]
            f = bf16.widen(hi[lo:hi_end], phi)  # φ's high halves: exact
            if isinstance(low, np.ndarray):  # dense: φ = hi·2¹⁶ | lo, exact, then as the reference
                np.bitwise_or(phi, low[lo:hi_end], out=phi)
                np.add(acc, f if w == 1.0 else np.multiply(f, w, out=f), out=acc)
                continue
            if low is not None:
                idx, vals = low
                i0, i1 = np.searchsorted(idx, (lo, hi_end))
                idx, vals = idx[i0:i1] - lo, vals[i0:i1]
                old = acc[idx]
                exact = (phi[idx] | vals).view(np.float32)
            np.add(acc, f if w == 1.0 else np.multiply(f, w, out=f), out=acc)
            if low is not None:
                acc[idx] = old + exact if w == 1.0 else old + w * exact
        if out_tag == "BF16":  # rounded straight into the output: no temporary, no copy
            finite = bf16.round_into(acc, out[lo:hi_end], tmp) and finite
        else:
            out[lo:hi_end] = from_f32(acc, out_tag)
            finite = finite and all_finite(out[lo:hi_end])
        if observe is not None:
            observe(name, raw, spec.tag, acc, out[lo:hi_end], out_tag)
    return out.reshape((b - a, *spec.shape[1:]) if spec.shape else ()), finite


def rows_of(shape: tuple[int, ...]) -> int:
    return shape[0] if shape else 1


class StoreDeltas:
    """The DeltaReader of one tensor of stored vectors: chunk-aligned row blocks, in order,
    read and handed to `fn` on a small pool of their own (alive only while a pass runs)."""

    def __init__(self, vectors: list[StoredVector], name: str, workers: int):
        self.vectors, self.name, self.workers = vectors, name, workers
        shape = vectors[0].spec(name).shape
        self.shape = shape
        self.size = math.prod(shape)
        self.terms = len(vectors)

    def _read(self, fn: Callable[[list[np.ndarray]], T], a: int, b: int) -> T:
        return fn([v.read_rows(self.name, a, b).reshape(-1) for v in self.vectors])

    def map(self, fn: Callable[[list[np.ndarray]], T]) -> Iterator[T]:

        jobs = (functools.partial(self._read, fn, a, b) for a, b in row_blocks(self.shape))
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="prepare") as pool:
            yield from ordered(pool, jobs, 2 * self.workers)


# -- verbs -------------------------------------------------------------------------------
