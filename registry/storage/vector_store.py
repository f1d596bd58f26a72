"""The Zarr v3 vector store: one group per vector version, one float32 array per tensor.

Groups are keyed by a random id, not by name and version, so that data can be written
completely before the database row that makes it visible is committed; a crash leaves an
unreferenced group that `gc` removes, never a visible half-vector.

Arrays are zarr v3 arrays, written and read directly: a chunk is one file write or read,
one crc32c and one codec call; zarr's async machinery would triple the cost per chunk and its
import alone takes longer than `registry vector list` may. New arrays use the codec chain
bytes → registry_split16 → crc32c (see registry/codec.py: the high and low 16-bit halves of
each float32 stored apart, ~1.4 bytes/param, cheap to encode and decode); arrays written by
earlier versions (bytes → blosc lz4hc → crc32c) still read. Any other chain is refused.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from registry.errors import IntegrityError, NotInitialized
from registry.storage.array_meta import CHUNK_SLACK, META_LIMIT, load_meta
from registry.storage.blobs import open_blobs
from registry.storage.codec import NAME, decode, encode, parts
from registry.storage.low_rank import expand, factor_arrays, logical_names
from registry.storage.tensor_io import TensorSpec, block_rows, row_blocks
from registry.util import bounded_json
from registry.util.digests import ArrayHasher, array_sha256
from registry.util.pipeline import labelled, ordered

DATA = "data"
GROUP_META = {"attributes": {}, "zarr_format": 3, "node_type": "group"}


def _array_meta(shape: tuple[int, ...], chunks: tuple[int, ...], scalar: bool) -> dict:
    """zarr v3 metadata of one float32 array in the split16 chain (what zarr itself writes)."""
    return {
        "shape": list(shape),
        "data_type": "float32",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        # "." keeps a tensor's chunks in its own folder: no folder per chunk to create
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}},
        "fill_value": 0.0,
        "codecs": [
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": NAME},
            {"name": "crc32c"},
        ],
        "attributes": {"scalar": scalar},
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }


def sum_squares(x: np.ndarray) -> float:
    """Σx² of float32 values: float32 within rows of 1024, float64 across rows.

    A quarter of a float64 pass's cost, and within ~1e-7 of it (relative): ample for a norm
    that is displayed and compared with a base's. One formula for import, training and bundles.
    """
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    k = flat.size - flat.size % 1024
    rows = flat[:k].reshape(-1, 1024)
    tail = flat[k:].astype(np.float64)
    return float(np.einsum("ij,ij->i", rows, rows).sum(dtype=np.float64)) + float(np.dot(tail, tail))


def chunk_key(name: str, i: int, ndim: int, separator: str = ".") -> str:
    """Zarr v3 default chunk key of row-chunk i: `c.i.0…` (arrays of earlier versions: `c/i/0/…`)."""
    return f"{name}/" + separator.join(["c", str(i), *["0"] * (max(ndim, 1) - 1)])


def chunk_rows(shape: tuple[int, ...]) -> int:
    """Rows per stored chunk: one row block, so readers and writers align with the chunks."""
    return block_rows(shape)


class VectorStore:
    def __init__(self, url: str | Path):

        self.url = str(url)
        self.blobs = open_blobs(self.url)
        self.remote = self.blobs.remote
        # local stores keep a Path for callers that hand folders to other tools
        self.path = Path(self.url) if not self.remote else None

    # -- lifecycle -------------------------------------------------------------------------
    def create(self, registry_id: str) -> None:
        import zarr

        if self.blobs.nonempty():
            raise NotInitialized(f"store {self.url} already exists and is not empty")
        root = zarr.open_group(store=self.url, mode="w", zarr_format=3)
        root.attrs["registry_id"] = registry_id
        root.require_group(DATA)

    def exists(self) -> bool:
        return self.blobs.exists("zarr.json")

    def check(self, registry_id: str) -> None:
        """Refuse a missing store or one that belongs to another registry."""
        try:
            raw = self.blobs.read("zarr.json", META_LIMIT)
        except FileNotFoundError:
            raise NotInitialized(f"vector store missing at {self.url}") from None
        except IntegrityError as e:
            raise NotInitialized(f"vector store {self.url} is unreadable ({e})") from None
        try:
            found = bounded_json.loads(raw).get("attributes", {}).get("registry_id")
        except (ValueError, AttributeError) as e:
            raise NotInitialized(f"vector store {self.url} is unreadable ({e})") from None
        if found != registry_id:
            raise NotInitialized(
                f"vector store {self.url} belongs to another registry ({found} != {registry_id})"
            )

    # -- writing ---------------------------------------------------------------------------
    def writer(self) -> VectorWriter:
        return VectorWriter(self, uuid.uuid4().hex)

    # -- reading ---------------------------------------------------------------------------
    def open(self, key: str, label: str | None = None) -> StoredVector:
        return StoredVector(self, key, label)

    def group_keys(self) -> list[str]:
        return [k for k in self.blobs.dirs(DATA) if not k.startswith(".")]

    def delete(self, key: str) -> int:
        """Remove one group; returns the bytes freed."""
        freed = self.nbytes(key)
        self.blobs.delete(f"{DATA}/{key}")
        return freed

    def mtime(self, key: str) -> float:
        """Last write to a group (its newest file), for gc's grace period."""
        return self.blobs.mtime(f"{DATA}/{key}")

    def nbytes(self, key: str) -> int:
        return self.blobs.size(f"{DATA}/{key}")

    def files(self, key: str) -> list[str]:
        return self.blobs.files(f"{DATA}/{key}")

    def read_file(self, key: str, rel: str) -> bytes:
        """One file of a group (a regular file, bounded: see blobs.read_regular)."""
        return self.blobs.read(f"{DATA}/{key}/{rel}")

    def put_group(self, local: Path, key: str) -> None:
        self.blobs.put_tree(local, f"{DATA}/{key}")

    @property
    def workers(self) -> int:
        """Threads for chunk work: every core locally (codecs, hashing and numpy release the
        GIL); object stores are latency-bound, so at least 8 fetch at once."""
        cores = os.cpu_count() or 2
        return max(8, cores) if self.remote else max(2, cores)


class VectorWriter:
    """Writes the arrays of one new vector: chunks encoded in parallel, digests in order.

    Metadata and chunk files are zarr v3 (codec chain bytes → registry_split16 → crc32c), so
    zarr reads them once registry is installed; zarr is not imported to write them.
    """

    def __init__(self, store: VectorStore, key: str, workers: int | None = None):

        self.store, self.key = store, key
        store.blobs.write(f"{DATA}/{key}/zarr.json", json.dumps(GROUP_META, indent=2).encode())
        self.digests: dict[str, str] = {}
        self.norms: dict[str, float] = {}
        self.workers = workers or store.workers
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="encode")

    def write(
        self, tensors: Iterable[tuple[str, tuple[int, ...], Iterable[Callable[[], np.ndarray]]]]
    ) -> None:
        """Store tensors from their chunk-row blocks (float32), given as jobs in row order.

        One ordered stream runs across tensors, so a model of many one-block tensors keeps
        every core busy: the pool computes blocks (the jobs) a few ahead, each computed block
        is encoded and written on the pool, and this thread feeds each tensor's digest (over
        the float32 bytes, in order) meanwhile. `digests` and `norms` are complete on return.
        """
        hashers: dict[str, ArrayHasher] = {}
        squares: dict[str, float] = {}

        def tagged():
            for name, shape, jobs in tensors:
                full = (chunk_rows(shape), *shape[1:]) if shape else (1,)
                meta = _array_meta(shape if shape else (1,), full, not shape)
                self.store.blobs.write(
                    f"{DATA}/{self.key}/{name}/zarr.json", json.dumps(meta, indent=2).encode()
                )
                hashers[name], squares[name] = ArrayHasher(), 0.0
                for i, job in enumerate(jobs):
                    yield labelled((name, i, full), job)

        window = 2 * self.workers + 2
        writes: deque = deque()

        def settle(keep: int) -> None:
            while len(writes) > keep:
                name, w = writes.popleft()
                squares[name] += w.result()  # in block order: the sum does not depend on timing

        for (name, i, full), block in ordered(self._pool, tagged(), window):
            block = np.ascontiguousarray(block, dtype=np.float32)
            writes.append((name, self._pool.submit(self._encode, name, i, full, block)))
            hashers[name].update(block)
            settle(window)
        settle(0)
        for name, h in hashers.items():
            self.digests[name] = h.hexdigest()
            self.norms[name] = squares[name] ** 0.5

    def _encode(self, name: str, i: int, full: tuple[int, ...], block: np.ndarray) -> float:
        """Encode and write chunk i; returns its Σx² (float64)."""
        import google_crc32c

        flat = block.reshape(-1)
        # edge chunks are stored at full chunk size (zarr's rule), padded with +0.0
        body = encode(flat, size=math.prod(full))
        self.store.blobs.write(
            f"{DATA}/{self.key}/{chunk_key(name, i, len(full))}",
            body + google_crc32c.value(body).to_bytes(4, "little"),
        )
        return sum_squares(flat)

    def close(self) -> None:
        self._pool.shutdown()

    def abort(self) -> None:
        self.close()
        self.store.delete(self.key)


class StoredVector:
    """A stored φ as a TensorReader (`names / spec / read_rows`), values in float32.

    A low-rank tensor (arrays NAME.lora_A and NAME.lora_B, see storage.low_rank) reads as
    NAME: its rows are expanded from the factors block by block, never the whole tensor."""

    def __init__(self, store: VectorStore, key: str, label: str | None = None):
        self.key = key
        self.label = label or f"vector data {key}"
        self.blobs = store.blobs
        self.prefix = f"{DATA}/{key}"
        if not self.blobs.exists(f"{self.prefix}/zarr.json"):
            raise IntegrityError(f"{self.label}: data missing from the store")
        self._meta: dict[str, dict] = {}
        self._names: list[str] | None = None
        self._low: set[str] = set()

    def names(self) -> list[str]:
        """Tensors present in the store (the database's tensor rows say which must be)."""
        if self._names is None:
            self._names, self._low = logical_names(self.blobs.dirs(self.prefix))
        return self._names

    def is_low_rank(self, name: str) -> bool:
        self.names()
        return name in self._low

    def rank(self, name: str) -> int | None:
        """k of a low-rank tensor (its factors' inner size); None for a dense one."""
        return self.meta(factor_arrays(name)[0])["shape"][0] if self.is_low_rank(name) else None

    def factors(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(B, A) of a low-rank tensor, whole (small: k·(out + in) values), crc-checked."""
        a_name, b_name = factor_arrays(name)
        self.spec(name)  # the factors must chain
        a_shape, b_shape = self.meta(a_name)["shape"], self.meta(b_name)["shape"]
        return self._array_rows(b_name, 0, b_shape[0]), self._array_rows(a_name, 0, a_shape[0])

    def factor_sha256(self, name: str) -> dict[str, str]:
        """sha256 of each factor's float32 bytes (recorded beside the expanded tensor's)."""
        out = {}
        for label, array in zip(("lora_A", "lora_B"), factor_arrays(name), strict=True):
            rows = self.meta(array)["shape"][0]
            step = self.chunk_rows(array)
            out[label] = array_sha256(self._array_rows(array, a, b) for a, b in row_blocks((rows,), step))
        return out

    def meta(self, name: str) -> dict:
        if name not in self._meta:
            self._meta[name] = load_meta(
                self.blobs, f"{self.prefix}/{name}/zarr.json", f"{self.label}: array {name}"
            )
        return self._meta[name]

    def spec(self, name: str) -> TensorSpec:
        if self.is_low_rank(name):
            a_shape, b_shape = (self.meta(x)["shape"] for x in factor_arrays(name))
            if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != b_shape[1]:
                raise IntegrityError(f"{self.label}: factors of {name} do not chain ({b_shape} · {a_shape})")
            return TensorSpec(name, "F32", (b_shape[0], a_shape[1]))
        meta = self.meta(name)
        shape = () if meta.get("attributes", {}).get("scalar") else tuple(meta["shape"])
        return TensorSpec(name, "F32", shape)

    def chunk_rows(self, name: str) -> int:
        if self.is_low_rank(name):
            return chunk_rows(self.spec(name).shape)  # the blocks a dense array would have
        return self.meta(name)["chunk_grid"]["configuration"]["chunk_shape"][0]

    def sha256(self, name: str) -> str:
        """sha256 of an array's float32 bytes, chunk by chunk (what the database records)."""
        shape = self.spec(name).shape
        return array_sha256(self.read_rows(name, a, b) for a, b in row_blocks(shape, self.chunk_rows(name)))

    def read_rows(self, name: str, a: int, b: int) -> np.ndarray:
        """Rows [a, b): every chunk checked against its crc32c, then decompressed (a low-rank
        tensor: B's rows [a, b) times A, expanded in float32 as storage.low_rank defines)."""
        if self.is_low_rank(name):
            a_name, b_name = factor_arrays(name)
            self.spec(name)  # the factors must chain
            k = self.meta(a_name)["shape"][0]
            return expand(self._array_rows(b_name, a, b), self._array_rows(a_name, 0, k))
        return self._array_rows(name, a, b)

    def _array_rows(self, name: str, a: int, b: int) -> np.ndarray:
        meta = self.meta(name)
        shape = meta["shape"]
        step = self.chunk_rows(name)
        first, last = a // step, (b - 1) // step
        parts = [self._chunk(name, meta, i, shape, step) for i in range(first, last + 1)]
        rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return rows[a - first * step : b - first * step]

    def read_parts(self, name: str, a: int, b: int, slot: int = 0):
        """Rows [a, b) still split (codec.Parts: high halves, low halves), when they are exactly
        one split16 chunk, crc-checked; None otherwise (the caller then uses read_rows), and
        for a low-rank tensor (there are no halves to add: its rows are computed).

        Lets a linear merge add the high halves as bf16 straight into its float32 sum and
        patch the few elements with low halves, without building φ in float32 first."""
        if self.is_low_rank(name):
            return None
        meta = self.meta(name)
        step = self.chunk_rows(name)
        shape = meta["shape"]
        if not meta["split16"] or a % step or b != min(shape[0], a + step):
            return None
        data = self._raw_chunk(name, a // step, shape)
        try:
            p = parts(data, slot, size=meta["chunk_size"])
            p.low_halves()  # checked here, so a bad low plane is reported like any bad chunk
            return p
        except Exception as e:
            raise IntegrityError(
                f"{self.label}: array {name} cannot be decoded (chunk {a // step}: {e})"
            ) from e

    def _raw_chunk(self, name: str, i: int, shape: list[int]) -> bytes:
        """A chunk's body after its crc32c check."""
        import google_crc32c

        meta = self.meta(name)
        # a chunk of n float32 values encodes to at most 4n bytes plus headers, whatever the codec
        limit = 4 * meta["chunk_size"] + CHUNK_SLACK
        try:
            data = self.blobs.read(
                f"{self.prefix}/{chunk_key(name, i, len(shape), meta['separator'])}", limit
            )
        except FileNotFoundError:  # every chunk is written: a missing one is lost data, not zeros
            raise IntegrityError(f"{self.label}: array {name} is missing chunk {i}") from None
        except IntegrityError as e:  # a FIFO, a link, a device or an oversized file: never read
            raise IntegrityError(f"{self.label}: array {name} chunk {i}: {e}") from None
        body, crc = data[:-4], int.from_bytes(data[-4:], "little")
        if google_crc32c.value(body) != crc:
            raise IntegrityError(f"{self.label}: array {name} cannot be decoded (chunk {i}: crc32c mismatch)")
        return body

    def _chunk(self, name: str, meta: dict, i: int, shape: list[int], step: int) -> np.ndarray:
        from numcodecs import blosc

        rows = min(step, shape[0] - i * step)
        body = self._raw_chunk(name, i, shape)
        try:
            if meta["split16"]:  # edge chunks are stored at full chunk size: decode their rows only
                values = decode(body, count=rows * math.prod(shape[1:]), size=meta["chunk_size"])
                return values.reshape((rows, *shape[1:]))
            if len(body) < 16 or int.from_bytes(body[4:8], "little") != 4 * meta["chunk_size"]:
                raise ValueError(
                    "blosc frame size does not match the array's chunk shape"
                )  # before allocating
            out = np.frombuffer(blosc.decompress(body), dtype="<f4")
            full = out.reshape((step, *shape[1:]))
        except Exception as e:
            raise IntegrityError(f"{self.label}: array {name} cannot be decoded (chunk {i}: {e})") from e
        return full[:rows]
