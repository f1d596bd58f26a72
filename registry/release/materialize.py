"""Writing θ = merge(θbase, φ…) as a loadable Hugging Face folder, deterministically.

Tensors stream one row block at a time (aligned with the store's chunks), so memory stays
flat whatever the model size; `outputs` writes the folder all or nothing. An identical
earlier output that still verifies is reused instead of recomputed.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from registry.db.models import Materialization, Recipe
from registry.errors import IntegrityError, NotApproved, NotFound
from registry.merging.methods import MergeMethod
from registry.merging.methods.linear import Linear
from registry.records.bases import check_pins, checked_base, pins_of
from registry.records.recipes import get_recipe, lookup_recipe
from registry.storage.tensor_io import (
    DTYPE_NAMES,
    FLOATS,
    STORAGE,
    SafetensorsFolder,
    TensorReader,
    TensorSpec,
    from_f32,
    row_blocks,
    to_f32,
)
from registry.storage.vector_store import StoredVector, chunk_rows
from registry.util.digests import weights_digest
from registry.util.faults import crashpoint
from registry.util.memory import recycle_large_blocks
from registry.util.refs import Ref

if TYPE_CHECKING:
    from registry.core import Core

T = TypeVar("T")
DEFAULT_SHARD_BYTES = 2 << 30


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
    tensor_names: set[str] | None = None  # the database's tensor rows (else the store's listing)
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
        if merged and type(self.method) is Linear:
            fast = linear_block(self.base, self.vectors, self.weights, out.name, a, b, out.tag)
            if fast is not None:
                return fast
        base = to_f32(self.base.read_rows(out.name, a, b), src.tag)
        if merged:
            deltas = [v.read_rows(out.name, a, b).reshape(base.shape) for v in self.vectors]
            start = a * (src.numel // rows_of(src.shape))
            base = self.method.merge_block(out.name, base, deltas, self.weights, state, start)
        return from_f32(base, out.tag)


# a linear block is summed in sub-blocks of about this many elements, so that each pass over
# them (widen, add, patch, round) runs in the core's cache
SUB_ELEMS = 1 << 18


def linear_block(
    base: TensorReader, vectors: list, weights: list[float], name: str, a: int, b: int, out_tag: str
) -> np.ndarray | None:
    """Linear.merge_block on rows [a, b), bit for bit, reading split16 chunks without widening φ.

    acc += w·φ is done as acc += w·hi (hi: φ's high halves, an exact bf16) for every element,
    then the elements whose φ has a non-zero low half are recomputed from their old sum with
    the exact φ — the same float32 operations on the same values as the reference. A dense
    low plane (φ of float32 master weights) is or-ed into the widened high halves per
    sub-block instead: the exact φ, still in cache. None when a vector's chunk is not split16
    (the first store format; the caller then merges in float32).
    """
    from ml_dtypes import bfloat16

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
    scratch = None  # a dense term's exact φ for one sub-block
    for s in range(a, b, step):
        e = min(b, s + step)
        lo, hi_end = (s - a) * row, (e - a) * row
        acc = to_f32(base.read_rows(name, s, e), spec.tag).reshape(-1)  # fresh: summed in place
        for hi, low, w in terms:
            if isinstance(low, np.ndarray):  # dense: φ = hi·2¹⁶ | lo, exact, then as the reference
                if scratch is None:
                    scratch = np.empty(min(step * row, (b - a) * row), np.uint32)
                phi = scratch[: hi_end - lo]
                np.left_shift(hi[lo:hi_end], 16, out=phi, dtype=np.uint32)
                np.bitwise_or(phi, low[lo:hi_end], out=phi)
                f = phi.view(np.float32)
                np.add(acc, f if w == 1.0 else np.multiply(f, w), out=acc)
                continue
            h = hi[lo:hi_end].view(bfloat16)
            if low is not None:
                idx, vals = low
                i0, i1 = np.searchsorted(idx, (lo, hi_end))
                idx, vals = idx[i0:i1] - lo, vals[i0:i1]
                old = acc[idx]
                exact = ((h.view(np.uint16)[idx].astype(np.uint32) << 16) | vals).view(np.float32)
            if w == 1.0:
                np.add(acc, h, out=acc, dtype=np.float32)
            else:
                np.add(acc, np.multiply(h, w, dtype=np.float32), out=acc)
            if low is not None:
                acc[idx] = old + exact if w == 1.0 else old + w * exact
        if out_tag == "BF16":  # rounded straight into the output: no temporary, no copy
            np.copyto(out[lo:hi_end].view(bfloat16), acc, casting="unsafe")
        else:
            out[lo:hi_end] = from_f32(acc, out_tag)
    return out.reshape((b - a, *spec.shape[1:]) if spec.shape else ())


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
        from registry.util.pipeline import ordered

        jobs = (functools.partial(self._read, fn, a, b) for a, b in row_blocks(self.shape))
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="prepare") as pool:
            yield from ordered(pool, jobs, 2 * self.workers)


# -- verbs -------------------------------------------------------------------------------
def materialize(
    core: Core,
    ref: str,
    out: str | Path,
    force: bool = False,
    on_bytes: Callable[[int], None] | None = None,
    shard_bytes: int | None = None,
    require_approved: bool = False,
    reuse: bool = True,
    durable: bool = False,
    max_ppl_drift: float | None = None,
    sign_key: str | Path | None = None,
) -> Materialization:
    """Write recipe `ref` to `out`; an identical earlier output that still verifies is reused.

    `max_ppl_drift` (a fraction) gates on `retention`: measured on the in-memory merge first,
    refused above it with nothing written, recorded in the card and the lock otherwise.

    `durable` fsyncs the files before the rename (power-loss safety; a killed process
    never leaves a partial folder either way, since the rename is the commit).
    `require_approved` needs the recipe and every one of its vectors approved; `force`
    replaces only an earlier output of this registry; `sign_key` writes OUT.sig beside it.
    """
    from registry.evaluation.results_log import output_notes
    from registry.merging.methods import get_method
    from registry.records.verified_reads import verified_vectors
    from registry.release.lockfile import build_lock, cached_card
    from registry.release.output_folders import (
        check_replaceable,
        copy_folder,
        files_to_copy,
        prepare_out,
        write_folder,
    )

    out = Path(out).resolve()
    r = get_recipe(core, ref)
    if require_approved:
        require_all_approved(r)
    if force:
        check_replaceable(core, out)
    notes = output_notes(core, r, max_ppl_drift)  # may refuse (retention gate)
    t0 = time.perf_counter()
    previous = reusable(core, r, out) if reuse and "retention" not in notes else None
    if previous is not None:
        checked_base(core, r.base.name)
    if previous is not None and Path(previous.out_path) == out:
        files, reused = dict(previous.files), previous
    elif previous is not None:
        copy_folder(Path(previous.out_path), out, force, durable)
        files, reused = dict(previous.files), previous
    else:
        b, base_w = checked_base(core, r.base.name)  # pins first: an unpinned weight file is refused
        # the database's tensor rows say what must exist: a missing array is refused here
        data = verified_vectors(core, [t.vector for t in r.terms], base_w.names())
        prepare_out(out, force)
        recycle_large_blocks()
        pins = pins_of(b)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="beside-merge") as aside:
            # the pins are re-hashed and the card built while the merge runs
            plan = MergePlan(
                base=base_w,
                vectors=data,
                tensor_names={t.name for t in r.terms[0].vector.tensors} if r.terms else set(),
                weights=[t.weight for t in r.terms],
                method=get_method(r.method)(params=dict(r.params)),
                out_tag=DTYPE_NAMES[r.dtype],
                copy_files=files_to_copy(Path(b.path), list(pins)),
                card=aside.submit(cached_card, r, b, core.home / ".cache", notes),
                lock=build_lock(r, b, notes),
                shard_bytes=shard_bytes or DEFAULT_SHARD_BYTES,
                on_bytes=on_bytes,
                checks=[aside.submit(check_pins, Path(b.path), pins, b.name, core.stat_cache()), *data],
                durable=durable,
                workers=core.store.workers,
            )
            files, reused = write_folder(plan, out, force), None
            crashpoint("materialize:after-rename")
    m = Materialization(
        recipe_id=r.id,
        out_path=str(out),
        output_digest=weights_digest(files),
        inputs_digest=r.content_digest,
        files=files,
        seconds=time.perf_counter() - t0,
        reused_from_id=reused.id if reused else None,
    )

    def write() -> Materialization:
        with core.Session.begin() as s:
            s.add(m)
            details = {"out": str(out), "output_digest": m.output_digest}
            if reused:
                details["reused_from"] = reused.out_path
            core.audit(s, "materialize", r.ref, details)
        return m

    m = core.write(write)
    m.recipe = r
    if sign_key is not None:
        from registry.governance.signing import sign_folder

        sign_folder(out, sign_key)
    return m


def require_all_approved(r: Recipe) -> None:
    """A pipeline's gate: the recipe version and every vector it uses must be approved."""
    if r.status != "approved":
        raise NotApproved(
            f"recipe {r.ref} is {r.status}, not approved (approve it with `registry approve {r.ref}`)"
        )
    for t in r.terms:
        if t.vector.status != "approved":
            raise NotApproved(
                f"recipe {r.ref} uses vector {t.vector.ref}, which is {t.vector.status}, not approved"
            )


def reusable(core: Core, r: Recipe, out: Path) -> Materialization | None:
    """The newest earlier output of the same inputs whose files still match their digests."""
    from registry.release.output_folders import verify_files

    with core.Session() as s:
        candidates = list(
            s.scalars(
                select(Materialization)
                .where(Materialization.recipe_id == r.id, Materialization.inputs_digest == r.content_digest)
                .order_by(Materialization.id.desc())
            )
        )
    candidates.sort(key=lambda m: Path(m.out_path) != out)  # the folder asked for, then the newest
    seen = set()
    for m in candidates:
        if m.out_path in seen or not Path(m.out_path).is_dir():
            continue
        seen.add(m.out_path)
        if not verify_files(Path(m.out_path), m.files):
            return m
    return None


def list_materializations(core: Core, ref: str | None = None) -> list[Materialization]:
    with core.Session() as s:
        q = select(Materialization).options(selectinload(Materialization.recipe)).order_by(Materialization.id)
        if ref:
            q = q.where(Materialization.recipe_id == lookup_recipe(s, Ref.parse(ref)).id)
        return list(s.scalars(q))


def verify_lock(core: Core, lock_path: str | Path) -> list[str]:
    """Re-hash a materialized folder against its lock and the registry's own record."""
    from registry.release.output_folders import verify_files

    lock_path = Path(lock_path)
    try:
        lock = json.loads(lock_path.read_text())
        files, recorded, rec = lock["files"], lock["output_digest"], lock["recipe"]
        rec_ref = f"{rec['name']}@v{rec['version']}"
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"{lock_path}: not a registry lock file ({e})") from None
    problems = verify_files(lock_path.parent, files)
    if weights_digest(files) != recorded:
        problems.append("lock: output_digest does not match its own file list")
    try:
        r = get_recipe(core, rec_ref)
    except NotFound:
        return [*problems, f"registry: recipe {rec_ref} is unknown here"]
    if r.content_digest != rec.get("content_digest"):
        problems.append(f"registry: recipe {r.ref} content differs from the lock's")
    if not any(m.output_digest == recorded for m in list_materializations(core, r.ref)):
        problems.append(f"registry: no materialization of {r.ref} with output digest {recorded[:16]}…")
    return problems
