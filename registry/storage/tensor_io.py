"""Safetensors folders read and written with numpy alone, one row-block at a time.

Why not the `safetensors` package: its writer needs every tensor in memory at once, and
its torch reader costs a torch import. The format is a length-prefixed JSON header
followed by raw little-endian bytes, so streaming it ourselves keeps memory flat and
output byte-deterministic. bfloat16 travels as raw uint16; `storage.bf16` widens and rounds
it with integer numpy passes, bit for bit as ml_dtypes' casts (round to nearest-even, as torch).
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from registry.errors import IncompatibleWeights, UnsafeWeights
from registry.storage import bf16
from registry.util.digests import stream_hasher
from registry.util.faults import crashpoint
from registry.util.pipeline import labelled, ordered

# safetensors dtype tag -> numpy storage dtype (BF16 is stored as its raw bits)
STORAGE = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
FLOATS = {"F64", "F32", "F16", "BF16"}
# names used in recipes / configs -> safetensors tags
DTYPE_NAMES = {
    "bfloat16": "BF16",
    "float16": "F16",
    "float32": "F32",
    "bf16": "BF16",
    "fp16": "F16",
    "fp32": "F32",
}
TAG_NAMES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64"}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
BLOCK_BYTES = 8 << 20  # rows are read and written in blocks of about this many fp32 bytes


def to_f32(raw: np.ndarray, tag: str) -> np.ndarray:
    """Widen stored values to float32 exactly (every bf16/fp16 value is an fp32 value)."""
    if tag == "BF16":
        return bf16.widen(raw).reshape(raw.shape)
    if tag == "F32":
        return raw
    return raw.astype(np.float32)


def from_f32(x: np.ndarray, tag: str) -> np.ndarray:
    """Narrow float32 to the storage dtype with round-to-nearest-even, as torch does."""
    if tag == "F32":
        return np.ascontiguousarray(x, dtype=np.float32)
    if tag == "F16":
        return x.astype(np.float16)
    if tag == "BF16":
        return bf16.narrow(x)
    raise ValueError(f"cannot write dtype {tag}")


def pickle_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(PICKLE_SUFFIXES))


def refuse_pickles(folder: Path) -> None:
    """Pickled checkpoints can run code when loaded, so they are never opened.

    Beside safetensors weights (many Hub repositories ship both) they are ignored; a
    folder whose only weights are pickles is refused.
    """
    bad = pickle_files(folder)
    if bad and not any(folder.glob("*.safetensors")):
        raise UnsafeWeights(
            f"{folder}: refusing pickle-based weight files ({', '.join(bad)}); "
            "convert them to safetensors first"
        )


@dataclass(frozen=True)
class TensorSpec:
    name: str
    tag: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * STORAGE[self.tag].itemsize

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1

    def row_blocks(self) -> Iterator[tuple[int, int]]:
        return row_blocks(self.shape)


def block_rows(shape: tuple[int, ...], block_bytes: int = BLOCK_BYTES) -> int:
    """Rows per block: about block_bytes of float32 (the store's chunks use the same count)."""
    rows = shape[0] if shape else 1
    row_elems = max(1, math.prod(shape[1:]) if len(shape) > 1 else 1)
    return max(1, min(rows, block_bytes // (4 * row_elems)))


def row_blocks(shape: tuple[int, ...], step: int | None = None) -> Iterator[tuple[int, int]]:
    """The one row-block iterator: ranges [a, b) along dim 0 (a scalar is one row)."""
    rows = shape[0] if shape else 1
    step = step or block_rows(shape)
    for a in range(0, rows, step):
        yield a, min(rows, a + step)


class TensorReader(Protocol):
    """What every source of tensors offers: a safetensors folder, a stored vector."""

    def names(self) -> list[str]: ...

    def spec(self, name: str) -> TensorSpec: ...

    def read_rows(self, name: str, a: int, b: int) -> np.ndarray: ...


def read_whole(reader: TensorReader, name: str) -> np.ndarray:
    spec = reader.spec(name)
    return reader.read_rows(name, 0, spec.rows).reshape(spec.shape)


class SafetensorsFile:
    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise IncompatibleWeights(f"{path.name}: not a safetensors file (too short)")
            (n,) = struct.unpack("<Q", head)
            if n > 100_000_000:
                raise IncompatibleWeights(f"{path.name}: not a safetensors file (bad header)")
            try:
                header = json.loads(f.read(n))
            except ValueError as e:
                raise IncompatibleWeights(f"{path.name}: not a safetensors file ({e})") from e
        self.data_start = 8 + n
        self.specs: dict[str, TensorSpec] = {}
        self.offsets: dict[str, int] = {}
        try:
            self.metadata = header.pop("__metadata__", None) or {}
            for name, info in header.items():
                tag = info["dtype"]
                if tag not in STORAGE:
                    raise IncompatibleWeights(f"{path.name}: unsupported dtype {tag} for {name}")
                self.specs[name] = TensorSpec(name, tag, tuple(int(x) for x in info["shape"]))
                self.offsets[name] = self.data_start + int(info["data_offsets"][0])
        except IncompatibleWeights:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise IncompatibleWeights(f"{path.name}: not a safetensors file (bad header: {e!r})") from None

    def read_rows(self, name: str, a: int, b: int) -> np.ndarray:
        """Rows [a, b) of a tensor, in its storage dtype, read with one pread."""
        spec = self.specs[name]
        dt = STORAGE[spec.tag]
        rows = spec.shape[0] if spec.shape else 1
        row_elems = spec.numel // rows if rows else 0
        count = (b - a) * row_elems
        out = np.empty(count, dtype=dt)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            view = memoryview(out).cast("B")
            pos, done = self.offsets[name] + a * row_elems * dt.itemsize, 0
            while done < view.nbytes:
                got = os.preadv(fd, [view[done:]], pos + done)
                if got == 0:
                    raise IncompatibleWeights(f"{self.path.name}: truncated tensor {name}")
                done += got
        finally:
            os.close(fd)
        return out.reshape((b - a, *spec.shape[1:]) if spec.shape else ())


class SafetensorsFolder:
    """A Hugging Face weights folder: `names / spec / read_rows` over all shards."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise IncompatibleWeights(f"{self.folder}: not a folder")
        refuse_pickles(self.folder)
        self.files = sorted(self.folder.glob("*.safetensors"))
        if not self.files:
            raise IncompatibleWeights(f"{self.folder}: no *.safetensors weight files")
        self._where: dict[str, SafetensorsFile] = {}
        for path in self.files:
            st = SafetensorsFile(path)
            for name in st.specs:
                if name in self._where:
                    raise IncompatibleWeights(f"{self.folder}: tensor {name} appears twice")
                self._where[name] = st

    def names(self) -> list[str]:
        return sorted(self._where)

    def spec(self, name: str) -> TensorSpec:
        return self._where[name].specs[name]

    def read_rows(self, name: str, a: int, b: int) -> np.ndarray:
        return self._where[name].read_rows(name, a, b)

    def read(self, name: str) -> np.ndarray:
        return read_whole(self, name)


def _header_bytes(specs: list[TensorSpec], metadata: dict[str, str]) -> bytes:
    header: dict[str, object] = {"__metadata__": metadata}
    offset = 0
    for s in specs:
        header[s.name] = {
            "dtype": s.tag,
            "shape": list(s.shape),
            "data_offsets": [offset, offset + s.nbytes],
        }
        offset += s.nbytes
    raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def plan_shards(specs: list[TensorSpec], max_shard_bytes: int) -> list[list[TensorSpec]]:
    """Greedy, order-preserving split; the same specs always give the same shards."""
    shards: list[list[TensorSpec]] = [[]]
    size = 0
    for s in specs:
        if shards[-1] and size + s.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(s)
        size += s.nbytes
    return shards


def shard_names(count: int) -> list[str]:
    if count == 1:
        return ["model.safetensors"]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


BlockJobs = Callable[[TensorSpec], Iterable[Callable[[], np.ndarray]]]


def write_sharded(
    folder: Path,
    specs: list[TensorSpec],
    jobs: BlockJobs,
    max_shard_bytes: int,
    on_bytes: Callable[[int], None] | None = None,
    workers: int = 2,
    durable: bool = False,
) -> dict[str, str]:
    """Write tensors in order from their row-block jobs; return sha256 per file.

    Jobs run on a small thread pool (numpy, blosc and hashlib release the GIL) a few blocks
    ahead of the writer, which keeps the output order, and so the bytes, fixed.
    """
    shards = plan_shards(specs, max_shard_bytes)
    names = shard_names(len(shards))
    digests: dict[str, str] = {}
    window = 2 * workers + 2
    with (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="merge") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash") as hasher,
    ):
        for fname, shard in zip(names, shards, strict=True):
            h = stream_hasher()
            hashing: deque = deque()  # one hashing thread takes blocks in order, beside the writes
            with open(folder / fname, "wb") as f:
                head = _header_bytes(shard, {"format": "pt"})
                f.write(head)
                h.update(head)
                written = dict.fromkeys((s.name for s in shard), 0)
                tagged = (labelled(spec, job) for spec in shard for job in jobs(spec))
                # one ordered stream across tensors keeps the pool busy at tensor boundaries;
                # the window of blocks in flight bounds memory to a few block sizes
                for spec, block in ordered(pool, tagged, window):
                    data = memoryview(np.ascontiguousarray(block)).cast("B")
                    hashing.append(hasher.submit(h.update, data))
                    f.write(data)
                    while len(hashing) > window:
                        hashing.popleft().result()
                    written[spec.name] += data.nbytes
                    crashpoint("write:mid-file")
                    if on_bytes:
                        on_bytes(data.nbytes)
                for spec in shard:
                    if written[spec.name] != spec.nbytes:
                        raise RuntimeError(
                            f"{spec.name}: wrote {written[spec.name]} bytes, expected {spec.nbytes}"
                        )
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            for fut in hashing:
                fut.result()
            digests[fname] = h.hexdigest()
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(s.nbytes for s in specs)},
            "weight_map": {s.name: n for n, shard in zip(names, shards, strict=True) for s in shard},
        }
        (folder / "model.safetensors.index.json").write_text(
            json.dumps(index, indent=2, sort_keys=True) + "\n"
        )
    return digests
