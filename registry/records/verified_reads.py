"""Vector data read so that nothing is silently degraded: every array present and sha256-checked.

The database's tensor rows say which arrays must exist, and each array's sha256 is checked
while it streams.

A stored array whose sha256 was verified is remembered in the per-machine stat cache by the
fingerprint (size, mtime, ctime, inode) of its chunk files, like base pins; the next read of
unchanged files skips the hash. Remote stores cannot be vouched for by stat, so they are
always hashed while streaming.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from registry.errors import DataCollected, IntegrityError
from registry.storage.tensor_io import FLOATS
from registry.storage.vector_store import DATA, StoredVector
from registry.util.digests import ArrayHasher

if TYPE_CHECKING:
    from registry.core import Core
    from registry.db.models import Vector
    from registry.storage.file_cache import StatCache
    from registry.storage.tensor_io import TensorReader, TensorSpec


def merge_names(base_w: TensorReader) -> list[str]:
    """A merge's tensor list: the base's float tensors (every vector stores exactly these)."""
    return [n for n in base_w.names() if base_w.spec(n).tag in FLOATS]


def open_checked(
    core: Core, v: Vector, base_names: Iterable[str] | None = None, required: Iterable[str] | None = None
) -> StoredVector:
    """A vector's data, refused (one line, before anything is written) if any array is missing.

    Every array named by the database must exist with the recorded shape; with `base_names`,
    every array must also name a tensor of the base; with `required` (a merge's tensor list),
    the vector must hold every one of them: a term that covers only part of the base would
    leave the rest silently unmerged.
    """
    if required is not None:
        have = {t.name for t in v.tensors}
        missing = [n for n in required if n not in have]
        if missing:
            raise IntegrityError(
                f"vector {v.ref}: lacks {len(missing)} of its base's tensors ({', '.join(missing[:3])}"
                f"{', …' if len(missing) > 3 else ''}); a merge needs every one"
            )
    if getattr(v, "collected_at", None) is not None:
        raise DataCollected(
            f"vector {v.ref} was archived and `registry gc` removed its store data: it cannot be read "
            "(its digests and lineage remain)"
        )
    data = core.store.open(v.store_key, label=f"vector {v.ref}")
    allowed = set(base_names) if base_names is not None else None
    for t in v.tensors:
        if allowed is not None and t.name not in allowed:
            raise IntegrityError(f"vector {v.ref}: array {t.name} names no tensor of the base")
        spec = data.spec(t.name)  # raises IntegrityError naming the array when it is missing
        if list(spec.shape) != list(t.shape):
            raise IntegrityError(
                f"vector {v.ref}: array {t.name} has shape {list(spec.shape)}, the database says {t.shape}"
            )
    return data


class VerifiedVector:
    """A stored vector as a TensorReader whose arrays are sha256-checked while they stream.

    Blocks may be read by several threads and out of order; they are fed to each array's
    hasher in row order. When the last row arrives the digest must equal the database's,
    or the read raises IntegrityError (and the output being written is discarded).
    """

    def __init__(self, data: StoredVector, v: Vector, cache: StatCache | None, root: Path | None):
        self.data, self.label = data, f"vector {v.ref}"
        self.expected = {t.name: t.sha256 for t in v.tensors}
        self.cache, self.root = cache, root
        self._lock = threading.Lock()
        self._state: dict[str, tuple[ArrayHasher, int, dict[int, tuple[int, np.ndarray]]]] = {}
        self.done: set[str] = set()
        for name, digest in self.expected.items():
            if self._vouched(name, digest):
                self.done.add(name)

    def _dir(self, name: str) -> Path | None:
        """The array's chunk folder, vouched for by the stat cache (none for a low-rank tensor:
        its two factor arrays are expanded, and hashed, on every read)."""
        if self.root is None or self.data.is_low_rank(name):
            return None
        return self.root / DATA / self.data.key / name

    def _vouched(self, name: str, digest: str) -> bool:
        d = self._dir(name)
        return self.cache is not None and d is not None and self.cache.fresh_tree(d, digest)

    def names(self) -> list[str]:
        return list(self.expected)

    def spec(self, name: str) -> TensorSpec:
        return self.data.spec(name)

    def chunk_rows(self, name: str) -> int:
        return self.data.chunk_rows(name)

    def read_parts(self, name: str, a: int, b: int, slot: int = 0):
        """The store's split fast path, only for arrays already verified (else None: read_rows)."""
        return self.data.read_parts(name, a, b, slot) if name in self.done else None

    def read_rows(self, name: str, a: int, b: int) -> np.ndarray:
        if name not in self.expected:
            raise IntegrityError(f"{self.label}: has no array {name} (its database rows list none)")
        rows = self.data.read_rows(name, a, b)
        if name in self.done:
            return rows
        with self._lock:
            h, nxt, pending = self._state.setdefault(name, (ArrayHasher(), 0, {}))
            pending[a] = (b, rows)
            while nxt in pending:
                end, block = pending.pop(nxt)
                h.update(block)
                nxt = end
            self._state[name] = (h, nxt, pending)
            total = self.data.spec(name).shape[0] if self.data.spec(name).shape else 1
            if nxt >= total:
                del self._state[name]
                if h.hexdigest() != self.expected[name]:
                    raise IntegrityError(
                        f"{self.label}: array {name} sha256 mismatch (its data changed since it was recorded)"
                    )
                self.done.add(name)
                d = self._dir(name)
                if self.cache is not None and d is not None:
                    self.cache.remember_tree(d, self.expected[name])
        return rows

    def result(self) -> None:
        """A check for the output writer: every array was read whole and verified."""
        unread = sorted(set(self.expected) - self.done)
        if unread:
            raise IntegrityError(f"{self.label}: arrays not verified: {', '.join(unread[:3])}")


def verified_vectors(core: Core, vecs: list[Vector], base_w: TensorReader) -> list[VerifiedVector]:
    """The terms of a merge over `base_w`, each covering all of its float tensors, checked as they stream."""
    names, required = list(base_w.names()), merge_names(base_w)
    cache = core.stat_cache() if not core.store.remote else None
    return [VerifiedVector(open_checked(core, v, names, required), v, cache, core.store.path) for v in vecs]
