"""Writing θ = merge(θbase, φ…) as a loadable Hugging Face folder, deterministically.

Tensors stream one row block at a time (aligned with the store's chunks), so memory stays
flat whatever the model size. Everything is written into a temporary sibling folder and
renamed into place only when complete: the output is either absent or whole.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from registry.basemodel import NOT_COPIED
from registry.errors import OutputExists
from registry.faults import crashpoint
from registry.methods import MergeMethod
from registry.store import StoredVector, chunk_rows
from registry.tensor_io import (
    FLOATS,
    TAG_NAMES,
    SafetensorsFolder,
    TensorSpec,
    from_f32,
    sha256_file,
    to_f32,
    write_sharded,
)

T = TypeVar("T")
DEFAULT_SHARD_BYTES = 2 << 30
LOCK_NAME = "registry-lock.json"


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
    vector_names: set[str] = field(init=False)
    _pool: ThreadPoolExecutor | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.vector_names = set(self.vectors[0].array_names()) if self.vectors else set()

    def out_specs(self) -> list[TensorSpec]:
        out = []
        for n in self.base.names():
            s = self.base.spec(n)
            out.append(TensorSpec(n, self.out_tag if s.tag in FLOATS else s.tag, s.shape))
        return out

    def jobs(self, out: TensorSpec) -> Iterator[Callable[[], np.ndarray]]:
        """One job per row block (aligned with the store's chunks): read, merge, round.

        A method's pre-pass (`prepare`, e.g. TIES's thresholds) streams the tensor's deltas
        first, on this plan's own pool; every method then merges block by block.
        """
        src = self.base.spec(out.name)
        rows = src.shape[0] if src.shape else 1
        merged = out.name in self.vector_names
        if not merged and src.tag == out.tag:
            for a, b in src.row_blocks():
                yield functools.partial(self.base.read_rows, out.name, a, b)
            return
        step = chunk_rows(src.shape) if merged and self.method.blockwise else rows
        state = self.method.prepare(out.name, self.reader(out.name), rows) if merged else None
        for a in range(0, rows, step):
            yield functools.partial(self._block, out, src, merged, state, a, min(rows, a + step))

    def reader(self, name: str) -> StoreDeltas:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="prepare")
        return StoreDeltas(self.vectors, name, self._pool, 2 * self.workers)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _block(
        self, out: TensorSpec, src: TensorSpec, merged: bool, state: Any, a: int, b: int
    ) -> np.ndarray:
        base = to_f32(self.base.read_rows(out.name, a, b), src.tag)
        if merged:
            deltas = [v.read_rows(out.name, a, b).reshape(base.shape) for v in self.vectors]
            start = a * (src.numel // (src.shape[0] if src.shape else 1))
            base = self.method.merge_block(out.name, base, deltas, self.weights, state, start)
        return from_f32(base, out.tag)


class StoreDeltas:
    """The DeltaReader of one tensor of stored vectors: chunk-aligned row blocks, in order."""

    def __init__(self, vectors: list[StoredVector], name: str, pool: ThreadPoolExecutor, window: int):
        from math import prod

        self.vectors, self.name, self.pool, self.window = vectors, name, pool, window
        shape = vectors[0].spec(name).shape
        self.rows = shape[0] if shape else 1
        self.size = prod(shape)
        self.terms = len(vectors)
        self.step = chunk_rows(shape)

    def _read(self, fn: Callable[[list[np.ndarray]], T], a: int, b: int) -> T:
        return fn([v.read_rows(self.name, a, b).reshape(-1) for v in self.vectors])

    def map(self, fn: Callable[[list[np.ndarray]], T]) -> Iterator[T]:
        from registry.pipeline import ordered

        jobs = (
            functools.partial(self._read, fn, a, min(self.rows, a + self.step))
            for a in range(0, self.rows, self.step)
        )
        yield from ordered(self.pool, jobs, self.window)


def output_digest(files: dict[str, str]) -> str:
    """One digest for a folder: sha256 over its sorted (file, sha256) pairs."""
    text = "".join(f"{name}\0{digest}\n" for name, digest in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def weights_digest(files: dict[str, str]) -> str:
    """The recorded output digest: over the weight files, which carry the model."""
    return output_digest({f: d for f, d in files.items() if f.endswith(".safetensors")})


def verify_files(folder: Path, files: dict[str, str]) -> list[str]:
    """Re-hash a folder against its recorded files; extra or missing files are problems too."""
    present = {p.name for p in folder.iterdir() if p.is_file()} - {LOCK_NAME} if folder.is_dir() else set()
    problems = []
    for name, digest in sorted(files.items()):
        if name not in present:
            problems.append(f"{name}: missing")
        elif sha256_file(folder / name) != digest:
            problems.append(f"{name}: sha256 mismatch")
    return problems + [f"{name}: not recorded" for name in sorted(present - set(files))]


def copy_folder(src: Path, out: Path, force: bool) -> None:
    """Copy a verified earlier output into place, with the same all-or-nothing rename."""
    prepare_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(src, tmp)
        _fsync_dir(tmp)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def prepare_out(out: Path, force: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise OutputExists(f"{out} exists and is not empty (use --force to replace it)")


def write_folder(plan: MergePlan, out: Path, force: bool = False) -> dict[str, str]:
    """Write the whole folder; return sha256 of every file in it except the lock."""
    out = out.resolve()
    prepare_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        try:
            files = write_sharded(
                tmp, plan.out_specs(), plan.jobs, plan.shard_bytes, plan.on_bytes, plan.workers, plan.durable
            )
        finally:
            plan.close()
        for src in plan.copy_files:
            if src.name == "config.json":
                (tmp / src.name).write_text(config_with_dtype(src, TAG_NAMES[plan.out_tag]))
            else:
                shutil.copyfile(src, tmp / src.name)
        (tmp / "README.md").write_text(plan.card if isinstance(plan.card, str) else plan.card.result())
        for p in sorted(tmp.iterdir()):
            if p.name not in files:
                files[p.name] = sha256_file(p)
        lock = {
            **plan.lock,
            "files": dict(sorted(files.items())),
            "output_digest": weights_digest(files),
        }
        (tmp / LOCK_NAME).write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
        for check in plan.checks:
            check.result()  # e.g. the base's pins: a failure discards the whole folder
        crashpoint("materialize:before-rename")
        if plan.durable:
            _fsync_dir(tmp)
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files


def _swap_into_place(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
    os.rename(tmp, out)
    _fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def files_to_copy(base_folder: Path, pinned: list[str]) -> list[Path]:
    return [base_folder / f for f in sorted(pinned) if f not in NOT_COPIED and not f.endswith(".safetensors")]


def config_with_dtype(path: Path, dtype: str) -> str:
    """The base's config.json with its dtype set to the output's, so loaders pick it up."""
    config = json.loads(path.read_text())
    keys = [k for k in ("dtype", "torch_dtype") if k in config] or ["torch_dtype"]
    for k in keys:
        config[k] = dtype
    return json.dumps(config, indent=2, sort_keys=True) + "\n"
