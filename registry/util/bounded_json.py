"""JSON from untrusted bytes, parsed with a bound on nesting.

`json.loads` recurses once per level: `[[[[…` a few thousand deep raises RecursionError
(not ValueError), which callers that catch ValueError turn into a traceback, and a value
just under Python's limit breaks whatever walks it next (serializing it into the database,
rendering it). Every manifest, zarr.json and lock this project reads is a few levels deep,
so anything deeper than MAX_DEPTH is refused as malformed, in one line.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


class TooDeep(ValueError):
    """Nested beyond MAX_DEPTH (a ValueError, so callers' malformed-JSON path takes it)."""


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON; ValueError (TooDeep) when it nests more than `max_depth` levels."""
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise TooDeep(f"nested more than {max_depth} levels deep") from None
    if depth(doc) > max_depth:
        raise TooDeep(f"nested more than {max_depth} levels deep")
    return doc


def depth(doc: Any) -> int:
    """Levels of lists and objects in a parsed value, counted without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, dict):
            x = list(x.values())
        if isinstance(x, list):
            deepest = max(deepest, d)
            stack.extend((y, d + 1) for y in x if isinstance(y, dict | list))
    return deepest
