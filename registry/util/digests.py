"""Every sha256 the registry records, one formula each, so no two modules can disagree.

- file:     the bytes of one file (base pins, output files, training sources)
- named:    a set of (name, sha256) pairs (a base's pins, a vector's arrays, an output folder)
- array:    a stored array's float32 bytes, fed block by block in row order
- content:  canonical JSON of a resolved recipe
- pairs:    a plugin's preference pairs, one JSON line each
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np


def file_sha256(path: Path, chunk: int = 8 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stream_hasher():
    """A file's sha256 fed piece by piece as it is written (equals file_sha256 afterwards)."""
    return hashlib.sha256()


def named_digest(digests: dict[str, str]) -> str:
    """One digest over sorted (name, sha256) pairs: order-free and unambiguous (NUL, newline)."""
    text = "".join(f"{n}\0{d}\n" for n, d in sorted(digests.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def weights_digest(files: dict[str, str]) -> str:
    """A materialized folder's recorded digest: over its weight files, which carry the model."""
    return named_digest({f: d for f, d in files.items() if f.endswith(".safetensors")})


class ArrayHasher:
    """sha256 of an array's float32 bytes, updated one row block at a time, in order."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, block: np.ndarray) -> None:
        self._h.update(memoryview(np.ascontiguousarray(block, dtype=np.float32)).cast("B"))

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def array_sha256(blocks: Iterable[np.ndarray]) -> str:
    h = ArrayHasher()
    for b in blocks:
        h.update(b)
    return h.hexdigest()


def content_digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def pairs_digest(rows: Iterable[tuple[str, ...]]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(list(row), ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()
