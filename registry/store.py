"""The Zarr v3 vector store: one group per vector version, one float32 array per tensor.

Groups are keyed by a random id, not by name and version, so that data can be written
completely before the database row that makes it visible is committed; a crash leaves an
unreferenced group that `gc` removes, never a visible half-vector.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from registry.errors import IntegrityError, NotInitialized
from registry.tensor_io import BLOCK_BYTES, TensorSpec

DATA = "data"
CLEVEL = 1  # zstd level 1 is within 2% of level 5 on bf16 deltas and 3x faster to write


def _codecs():
    """Byte-shuffled zstd, then a crc32c per chunk so a flipped byte fails to decode loudly."""
    from zarr.codecs import BloscCodec, Crc32cCodec

    return [BloscCodec(cname="zstd", clevel=CLEVEL, shuffle="shuffle", typesize=4), Crc32cCodec()]


def chunk_rows(shape: tuple[int, ...], block_bytes: int = BLOCK_BYTES) -> int:
    rows = shape[0] if shape else 1
    row_elems = max(1, int(np.prod(shape[1:])) if len(shape) > 1 else 1)
    return max(1, min(rows, block_bytes // (4 * row_elems)))


class VectorStore:
    def __init__(self, url: str | Path):
        self.url = str(url)
        self.path = Path(self.url)

    # -- lifecycle -------------------------------------------------------------------------
    def create(self, registry_id: str) -> None:
        import zarr

        if self.path.exists() and any(self.path.iterdir()):
            raise NotInitialized(f"store {self.path} already exists and is not empty")
        root = zarr.open_group(store=str(self.path), mode="w", zarr_format=3)
        root.attrs["registry_id"] = registry_id
        root.require_group(DATA)

    def check(self, registry_id: str) -> None:
        """Refuse a missing store or one that belongs to another registry."""
        import zarr

        if not (self.path / "zarr.json").is_file():
            raise NotInitialized(f"vector store missing at {self.path}")
        root = zarr.open_group(store=str(self.path), mode="r")
        found = root.attrs.get("registry_id")
        if found != registry_id:
            raise NotInitialized(
                f"vector store {self.path} belongs to another registry ({found} != {registry_id})"
            )

    # -- writing ---------------------------------------------------------------------------
    def writer(self) -> VectorWriter:
        return VectorWriter(self, uuid.uuid4().hex)

    # -- reading ---------------------------------------------------------------------------
    def open(self, key: str, label: str | None = None) -> StoredVector:
        return StoredVector(self, key, label)

    def group_keys(self) -> list[str]:
        base = self.path / DATA
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def delete(self, key: str) -> int:
        """Remove one group; returns the bytes freed."""
        target = self.path / DATA / key
        freed = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        shutil.rmtree(target, ignore_errors=True)
        return freed

    def mtime(self, key: str) -> float:
        """Last write to a group (its newest file), for gc's grace period."""
        files = [p.stat().st_mtime for p in (self.path / DATA / key).rglob("*") if p.is_file()]
        return max(files, default=(self.path / DATA / key).stat().st_mtime)

    def nbytes(self, key: str) -> int:
        return sum(p.stat().st_size for p in (self.path / DATA / key).rglob("*") if p.is_file())


class VectorWriter:
    """Writes the arrays of one new vector, hashing the float32 bytes as they go."""

    def __init__(self, store: VectorStore, key: str):
        import zarr

        self.store, self.key = store, key
        self.group = zarr.open_group(store=str(store.path), mode="a").require_group(f"{DATA}/{key}")
        self.digests: dict[str, str] = {}
        self.norms: dict[str, float] = {}

    def add(self, name: str, shape: tuple[int, ...], blocks: Iterator[tuple[int, np.ndarray]]) -> None:
        """Store one tensor from row blocks (start_row, float32 block) aligned to chunk rows."""
        arr = self.group.create_array(
            name=name,
            shape=shape if shape else (1,),
            chunks=(chunk_rows(shape), *shape[1:]) if shape else (1,),
            dtype="float32",
            compressors=_codecs(),
            fill_value=0.0,
            attributes={"scalar": not shape},
        )
        h = hashlib.sha256()
        sq = 0.0
        for a, block in blocks:
            block = np.ascontiguousarray(block, dtype=np.float32)
            arr[a : a + (block.shape[0] if shape else 1)] = (
                block.reshape(-1, *shape[1:]) if shape else block.reshape(1)
            )
            h.update(memoryview(block).cast("B"))
            sq += float(np.dot(block.ravel().astype(np.float64), block.ravel().astype(np.float64)))
        self.digests[name] = h.hexdigest()
        self.norms[name] = sq**0.5

    def abort(self) -> None:
        self.store.delete(self.key)


class StoredVector:
    """Same surface as SafetensorsFolder (`names / spec / read_rows`), values in float32."""

    def __init__(self, store: VectorStore, key: str, label: str | None = None):
        import zarr

        self.key = key
        self.label = label or f"vector data {key}"
        try:
            self.group = zarr.open_group(store=str(store.path), mode="r", path=f"{DATA}/{key}")
        except Exception as e:
            raise IntegrityError(f"{self.label}: data missing from the store ({e})") from e
        self._arrays: dict[str, object] = {}

    def array(self, name: str):
        if name not in self._arrays:
            try:
                self._arrays[name] = self.group[name]
            except KeyError as e:
                raise IntegrityError(f"{self.label}: array {name} missing from the store") from e
        return self._arrays[name]

    def spec(self, name: str) -> TensorSpec:
        arr = self.array(name)
        shape = () if arr.attrs.get("scalar") else tuple(arr.shape)
        return TensorSpec(name, "F32", shape)

    def chunk_rows(self, name: str) -> int:
        return self.array(name).chunks[0]

    def read_rows(self, name: str, a: int, b: int) -> np.ndarray:
        arr = self.array(name)
        try:
            return arr[a:b]
        except Exception as e:
            raise IntegrityError(f"{self.label}: array {name} cannot be decoded ({e})") from e
