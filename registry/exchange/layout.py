"""What a bundle may hold: the members its manifest names, each at most the size it implies.

A vector entry names a folder (`data`) and its arrays; each array must be exactly a float
tensor of the base, with the base's shape, and the vector must cover all of them (a merge's
tensor list is the base's). From those shapes follow the only files the folder may hold
(the group's and each array's `zarr.json`, and chunk files `c.I.0…` with I below the row
count) and the largest size of each: a chunk of n float32 values encodes to at most 4n
bytes plus headers, whichever codec wrote it. Sizes come from the base's own files, never
from the manifest's say-so, so a bundle cannot smuggle in a member larger than real data.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from registry.errors import IntegrityError
from registry.exchange.archive import MANIFEST, MANIFEST_LIMIT, check_name
from registry.storage.array_meta import CHUNK_SLACK, META_LIMIT
from registry.storage.low_rank import factor_arrays
from registry.storage.tensor_io import FLOATS, TensorReader

MAX_VERSION = 2**31 - 1  # versions are database integers


def version_of(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise IntegrityError(
            f"bundle {what}: version {str(value)[:40]!r} is not a version number (1..{MAX_VERSION})"
        )
    return value


def float_tensors(base_w: TensorReader) -> dict[str, tuple[int, ...]]:
    """The tensors every vector of a base must hold: its float tensors, by shape."""
    return {n: tuple(base_w.spec(n).shape) for n in base_w.names() if base_w.spec(n).tag in FLOATS}


def check_tensors(e: dict[str, Any], ref: str, base: str, wanted: dict[str, tuple[int, ...]]) -> dict:
    """The entry's tensor list, which must be exactly the base's float tensors and shapes."""
    listed = {}
    for t in e["tensors"]:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise IntegrityError(f"bundle vector {ref}: malformed tensor entry")
        if t["name"] in listed:
            raise IntegrityError(f"bundle vector {ref}: array {t['name'][:100]!r} is listed twice")
        listed[t["name"]] = t
    for name, t in listed.items():
        if name not in wanted or t.get("shape") != list(wanted[name]):
            raise IntegrityError(f"bundle vector {ref}: array {name[:100]} does not fit the base")
    missing = sorted(set(wanted) - set(listed))
    if missing:
        raise IntegrityError(
            f"bundle vector {ref}: lacks {len(missing)} of base {base}'s {len(wanted)} tensors "
            f"({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''}); a vector must cover them all"
        )
    return listed


def _arrays(ref: str, tensors: dict[str, tuple[int, ...]], listed: dict[str, dict]) -> dict:
    """The arrays a vector's folder may hold, by shape."""
    out = {}
    for name, shape in tensors.items():
        factors = (listed.get(name) or {}).get("factors")
        if factors is None:
            out[name] = shape
            continue
        k = factors.get("rank") if isinstance(factors, dict) else None
        ok = isinstance(k, int) and not isinstance(k, bool) and len(shape) == 2 and 1 <= k <= min(shape)
        if not ok:
            raise IntegrityError(f"bundle vector {ref}: array {name} has malformed factors")
        a_name, b_name = factor_arrays(name)
        out[a_name], out[b_name] = (k, shape[1]), (shape[0], k)
    return out


class Layout:
    """The files a bundle may hold, and the largest size of each (`limit_of`)."""

    def __init__(self, path: Path):
        self.path = path
        self.vectors: dict[str, dict[str, tuple[int, int, int]]] = {}
        self.total = MANIFEST_LIMIT

    def add_vector(
        self, ref: str, data: Any, tensors: dict[str, tuple[int, ...]], listed: dict[str, dict] | None = None
    ) -> None:
        """A vector's folder: one array per tensor, or, for a tensor the manifest lists with
        `factors` (a low-rank φ), its two factor arrays NAME.lora_B (rows × k), NAME.lora_A (k × cols)."""
        try:
            check_name(self.path, data if isinstance(data, str) else "")
        except IntegrityError:
            raise IntegrityError(
                f"bundle: vector {ref} data path {str(data)[:200]!r} leaves the bundle"
            ) from None
        for other in self.vectors:
            if data == other or data.startswith(other + "/") or other.startswith(data + "/"):
                raise IntegrityError(f"bundle: vector {ref} data path {data!r} overlaps another vector's")
        if data == MANIFEST or data.startswith(MANIFEST + "/"):
            raise IntegrityError(f"bundle: vector {ref} data path {data!r} is the manifest")
        arrays = {}
        for name, shape in _arrays(ref, tensors, listed or {}).items():
            rows = shape[0] if shape else 1
            n = max(1, math.prod(shape))
            arrays[name] = (rows, len(shape), 4 * n + CHUNK_SLACK)
            # padded edge chunks hold less than one chunk more than the tensor: 8n bounds them
            self.total += META_LIMIT + 8 * n + CHUNK_SLACK * rows
        self.vectors[data] = arrays
        self.total += META_LIMIT

    def limit_of(self, name: str) -> int | None:
        if name == MANIFEST:
            return MANIFEST_LIMIT
        parts = name.split("/")
        for k in range(1, len(parts)):
            arrays = self.vectors.get("/".join(parts[:k]))
            if arrays is not None:
                return self._in_vector(arrays, parts[k:])
        return None

    @staticmethod
    def _in_vector(arrays: dict[str, tuple[int, int, int]], rest: list[str]) -> int | None:
        if rest == ["zarr.json"]:
            return META_LIMIT
        if rest[0] not in arrays or len(rest) < 2:
            return None
        rows, ndim, limit = arrays[rest[0]]
        key = "/".join(rest[1:])
        if key == "zarr.json":
            return META_LIMIT
        for sep in "./":
            p = key.split(sep)
            if (
                len(p) == 1 + max(ndim, 1)
                and p[0] == "c"
                and p[1].isdigit()
                and str(int(p[1])) == p[1]
                and int(p[1]) < rows
                and all(x == "0" for x in p[2:])
            ):
                return limit
        return None
