"""split16: an exact encoding of float32 chunks that is cheap to compress and to decode.

A preference vector φ = θ+ − θ− of bf16 (or fp16) weights is exact in float32, but almost
every element has at most 8–9 significant bits: the low 16 bits of its float32 pattern are
zero in more than 99% of the elements (0.8% on the benchmark fixtures, fewer on real DPO
deltas, whose two sides mostly share an exponent). So a chunk is stored as

    header   magic "RS16", version, low-half mode, element count, section lengths
    high     the high 16 bits of every element (its bf16 truncation): blosc lz4, bit shuffle
    low      mode 0: nothing (every low half is zero)
             mode 1: the positions (uint32) and values (uint16) of the non-zero low halves
             mode 2: every low half, blosc zstd (level 1) with byte shuffle (dense: φ of
                     float32 master weights, as add-preference trains)

and decoded by widening the high halves (an exact bf16 → float32 cast) and or-ing in the
low ones. Bit for bit lossless for every float32 pattern (signed zeros, subnormals, NaN
payloads, infinities). Compared with blosc lz4hc over the whole float32 (the first store
format, still read): ~1.3 instead of 1.44 bytes/param, compression ~5× and decompression
~2× faster, because only half the bytes go through the codec.

Dense low halves of trained φ are mostly the few mantissa bits just below bf16's, then zeros:
zstd's entropy stage packs them tighter than lz4 (a DPO vector at the default learning rate:
2.5615 → 2.3213 bytes/param, benchmarks/results/2026-11-24-codec-limits*.json), at the cost
of slower decoding for such vectors only. blosc records its codec in each frame, so chunks
written with lz4 low planes still decode.

The codec is also a zarr v3 bytes-to-bytes codec (`registry_split16`, registered through
the `zarr.codecs` entry point), so zarr itself reads these arrays once registry is installed.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass, field

import numpy as np

from registry.storage.bf16 import widen

NAME = "registry_split16"
MAGIC = b"RS16"
VERSION = 1
_HEADER = struct.Struct("<4sBBxxQQQ")  # magic, version, low mode, count, high length, low length
LOW_NONE, LOW_SPARSE, LOW_DENSE = 0, 1, 2
# blosc: lz4 (level 1) with bit shuffle compresses the high halves of φ to ~1.37 bytes/param
# at ~600 M params/s per core and decompresses them at ~1 G params/s
CNAME, CLEVEL = b"lz4", 1
# dense low halves: zstd's entropy coder (see the module docstring); byte shuffle beats bit shuffle
LOW_CNAME, LOW_CLEVEL = b"zstd", 1
# above this share of non-zero low halves, a dense low plane is smaller than positions+values
DENSE_SHARE = 1 / 16


class CodecError(ValueError):
    """A chunk that is not a valid split16 encoding."""


def _blosc():
    from numcodecs import blosc

    return blosc


def encode(x: np.ndarray, size: int | None = None) -> bytes:
    """Encode float32 values (any shape; C order) exactly; `size`: pad with +0.0 to that many."""
    blosc = _blosc()
    flat = np.ascontiguousarray(x, dtype="<f4").reshape(-1)
    size = flat.size if size is None else size
    if size < flat.size:
        raise ValueError("encode: size smaller than the values")
    halves = flat.view("<u2")
    hi = np.zeros(size, "<u2") if size > flat.size else np.empty(size, "<u2")
    hi[: flat.size] = halves[1::2]
    lo = np.ascontiguousarray(halves[0::2])
    nz = np.flatnonzero(lo != 0)  # a bool mask is ~6× faster to scan than uint16
    hi_c = blosc.compress(hi, CNAME, CLEVEL, blosc.BITSHUFFLE, 0) if hi.size else b""
    if nz.size == 0:
        mode, low = LOW_NONE, b""
    elif nz.size <= DENSE_SHARE * size:
        mode = LOW_SPARSE
        low = nz.astype("<u4").tobytes() + lo[nz].astype("<u2").tobytes()
    else:
        mode = LOW_DENSE
        if size > flat.size:
            lo = np.concatenate([lo, np.zeros(size - flat.size, "<u2")])
        low = blosc.compress(lo, LOW_CNAME, LOW_CLEVEL, blosc.SHUFFLE, 0)
    return b"".join((_HEADER.pack(MAGIC, VERSION, mode, size, len(hi_c), len(low)), hi_c, low))


_scratch = threading.local()


def _hi_buffer(n: int, slot: int = 0) -> np.ndarray:
    """A per-thread buffer (one per slot) for the high halves: decompressing allocates nothing."""
    bufs = _scratch.__dict__.setdefault("hi", {})
    buf = bufs.get(slot)
    if buf is None or buf.size < n:
        buf = bufs[slot] = np.empty(n, "<u2")
    return buf[:n]


@dataclass
class Parts:
    """A decoded chunk before widening: high halves plus the low halves that are non-zero."""

    hi: np.ndarray  # uint16, one per element (a per-thread buffer: use before the slot's next decode)
    mode: int
    low: memoryview
    _decoded: tuple | None = field(default=None, repr=False)  # (low halves,) once checked

    def low_halves(self) -> tuple[np.ndarray, np.ndarray] | np.ndarray | None:
        """The low halves, checked: (positions, values) when sparse, a plane when dense."""
        if self._decoded is None:
            self._decoded = (self._low_halves(),)
        return self._decoded[0]

    def _low_halves(self) -> tuple[np.ndarray, np.ndarray] | np.ndarray | None:
        if self.mode == LOW_NONE:
            return None
        if self.mode == LOW_SPARSE:
            count = len(self.low) // 6
            idx = np.frombuffer(self.low, "<u4", count)
            # readers find a block's positions by binary search: out of order, a linear merge
            # would patch other elements than a decode does, and φ as verified ≠ φ as merged
            if count > 1 and not (idx[1:] > idx[:-1]).all():
                raise CodecError("split16 low-half positions are not strictly ascending")
            return idx, np.frombuffer(self.low, "<u2", count, offset=4 * count)
        out = np.empty(self.hi.size, "<u2")
        # a shorter frame would decode without error and leave `out` partly uninitialised
        _check_frame(self.low, out.nbytes, "low halves")
        _blosc().decompress(self.low, out)
        return out


def _check_frame(frame: bytes | memoryview, nbytes: int, what: str) -> None:
    """A blosc frame must decompress to exactly `nbytes`: blosc checks only that they fit."""
    # blosc's header: bytes 4–8 hold the decompressed size
    if len(frame) < 16 or int.from_bytes(frame[4:8], "little") != nbytes:
        raise CodecError(f"split16 {what} have the wrong size")


def parts(data: bytes | memoryview, slot: int = 0, size: int | None = None) -> Parts:
    """A chunk's halves; `size`: the element count its array's chunk shape says it holds
    (checked against the header before anything is allocated)."""
    view = memoryview(data)
    if len(view) < _HEADER.size:
        raise CodecError("split16 chunk too short")
    magic, version, mode, n, hi_len, lo_len = _HEADER.unpack_from(view)
    if magic != MAGIC or version != VERSION or mode not in (LOW_NONE, LOW_SPARSE, LOW_DENSE):
        raise CodecError(f"not a split16 chunk (magic {magic!r}, version {version}, mode {mode})")
    if len(view) != _HEADER.size + hi_len + lo_len or (mode == LOW_SPARSE and lo_len % 6):
        raise CodecError("split16 chunk has inconsistent lengths")
    if size is not None and n != size:
        raise CodecError(f"split16 chunk claims {n} values, its array's chunks hold {size}")
    body = view[_HEADER.size : _HEADER.size + hi_len]
    if n:
        _check_frame(body, 2 * n, "high halves")  # before the buffer is sized to the claim
    hi = _hi_buffer(n, slot)
    if n:
        _blosc().decompress(body, hi)
    return Parts(hi, mode, view[_HEADER.size + hi_len :])


def decode(
    data: bytes | memoryview, out: np.ndarray | None = None, count: int | None = None, size: int | None = None
) -> np.ndarray:
    """The float32 values of one chunk (flat), bit for bit as encoded (into `out` if given).

    `count`: only the first `count` values (an edge chunk's rows; the padding is skipped).
    `size`: the values the chunk must hold (refused before allocating if its header claims more).
    """
    p = parts(data, size=size)
    count = p.hi.size if count is None else count
    if not 0 <= count <= p.hi.size:
        raise CodecError(f"split16 chunk holds {p.hi.size} values, not {count}")
    if out is None:
        out = np.empty(count, "<f4")
    elif out.dtype != np.float32 or out.size != count or not out.flags.c_contiguous:
        raise ValueError("decode: out must be a contiguous float32 array of `count` values")
    # widening bf16 is exact: the high half in place, one integer shift (storage.bf16)
    widen(p.hi[:count], out.reshape(-1))
    return apply_low(p, out)


def apply_low(p: Parts, values: np.ndarray) -> np.ndarray:
    """Or the low halves into float32 values that hold the chunk's (first) high halves."""
    out = values.reshape(-1).view("<u4")
    low = p.low_halves()
    if isinstance(low, tuple):
        idx, vals = low
        if idx.size and int(idx[-1]) >= p.hi.size:
            raise CodecError("split16 low-half position out of range")
        if out.size < p.hi.size:  # positions are ascending: keep those inside
            keep = int(np.searchsorted(idx, out.size))
            idx, vals = idx[:keep], vals[:keep]
        out[idx] |= vals
    elif low is not None:
        out |= low[: out.size]
    return values


def _zarr_codec():
    """The zarr v3 codec class (built lazily: zarr is slow to import and reads need no zarr)."""
    from zarr.abc.codec import BytesBytesCodec
    from zarr.core.common import parse_named_configuration

    @dataclass(frozen=True)
    class Split16Codec(BytesBytesCodec):
        is_fixed_size = False

        @classmethod
        def from_dict(cls, data):
            parse_named_configuration(data, NAME, require_configuration=False)
            return cls()

        def to_dict(self):
            return {"name": NAME}

        def validate(self, *, shape, dtype, chunk_grid) -> None:
            if np.dtype(dtype.to_native_dtype()) != np.dtype("float32"):
                raise ValueError(f"{NAME} encodes float32 arrays only, not {dtype}")

        async def _decode_single(self, chunk_bytes, chunk_spec):
            values = decode(chunk_bytes.as_numpy_array().tobytes())
            return chunk_spec.prototype.buffer.from_array_like(values.view("B"))

        async def _encode_single(self, chunk_bytes, chunk_spec):
            data = encode(chunk_bytes.as_numpy_array().view("<f4"))
            return chunk_spec.prototype.buffer.from_array_like(np.frombuffer(data, "B"))

        def compute_encoded_size(self, input_byte_length: int, _chunk_spec) -> int:
            raise NotImplementedError

    Split16Codec.__name__ = Split16Codec.__qualname__ = "Split16Codec"
    return Split16Codec


def __getattr__(name: str):
    # `registry.storage.codec:Split16Codec` is the zarr.codecs entry point
    if name == "Split16Codec":
        cls = _zarr_codec()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
