"""An array's zarr.json, checked before it is used: it may come from a bundle or a damaged store.

Every field the reader relies on is validated, and the chunk grid must fit the shape (a
chunk is whole rows of its array), so a chunk never holds more values than its array: the
element count that a chunk header may claim is bounded before any buffer is sized.
"""

from __future__ import annotations

import math
from typing import Any

from registry.errors import IntegrityError
from registry.util import bounded_json

META_LIMIT = 64 << 10  # bytes of a zarr.json (group or array): a few hundred in practice
CHUNK_SLACK = 1024  # codec headers, blosc frame overheads and the crc32c, per chunk

# codec chains, by the names in each array's zarr.json: new arrays are written with SPLIT16;
# BLOSC is the first format (lz4hc level 1, byte shuffle), still read
SPLIT16 = ["bytes", "registry_split16", "crc32c"]
BLOSC = ["bytes", "blosc", "crc32c"]


def checked_meta(meta: dict) -> dict:
    """An array's zarr.json, every field this reader uses checked (it may come from a bundle)."""
    if not isinstance(meta, dict):
        raise TypeError("not a JSON object")
    codecs = [c["name"] for c in meta["codecs"]]
    if codecs not in (SPLIT16, BLOSC) or meta.get("data_type") != "float32":
        raise IntegrityError(f"has an unexpected encoding {codecs}")
    encoding = meta.get("chunk_key_encoding") or {}
    sep = (encoding.get("configuration") or {}).get("separator", "/")
    if encoding.get("name") != "default" or sep not in ("/", "."):
        raise IntegrityError("has an unexpected chunk key encoding")
    shape, grid = meta["shape"], meta["chunk_grid"]
    chunks = grid["configuration"]["chunk_shape"]
    ints = all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in [*shape, *chunks])
    if grid.get("name") != "regular" or not shape or not ints or len(chunks) != len(shape):
        raise ValueError(f"shape {str(shape)[:60]} and chunk grid {str(chunks)[:60]} do not agree")
    # a chunk is whole rows of the array: so it never holds more values than the array
    if not 1 <= chunks[0] <= max(shape[0], 1) or list(chunks[1:]) != list(shape[1:]):
        raise ValueError(f"chunk shape {chunks} does not fit shape {shape}")
    attributes = meta.get("attributes", {})
    if not isinstance(attributes, dict):
        raise TypeError("attributes are not a JSON object")
    meta["separator"] = sep
    meta["split16"] = codecs == SPLIT16
    meta["chunk_size"] = math.prod(chunks)
    return meta


def load_meta(blobs: Any, key: str, what: str) -> dict:
    """An array's zarr.json read from the store (a regular file of at most META_LIMIT bytes,
    nested at most bounded_json.MAX_DEPTH deep) and checked; any fault is one line naming `what`."""
    try:
        raw = blobs.read(key, META_LIMIT)
    except OSError as e:
        raise IntegrityError(f"{what} missing from the store") from e
    except IntegrityError as e:  # a FIFO, a link, a device or an oversized file: never read
        raise IntegrityError(f"{what} metadata: {e}") from None
    try:
        return checked_meta(bounded_json.loads(raw))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise IntegrityError(f"{what} has malformed metadata ({e})") from None
    except IntegrityError as e:
        raise IntegrityError(f"{what} {e}") from None
