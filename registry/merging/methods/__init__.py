"""Merge methods, one module each (see `base` for the interface they share), by name."""

from __future__ import annotations

from registry.merging.methods.base import DeltaReader, InMemory, MergeMethod, Param
from registry.merging.methods.dare import Dare
from registry.merging.methods.linear import Linear
from registry.merging.methods.orthogonal import Orthogonal
from registry.merging.methods.ties import Ties

__all__ = ["DeltaReader", "InMemory", "MergeMethod", "Param", "get_method", "methods"]


def methods() -> dict[str, type[MergeMethod]]:
    return {m.name: m for m in (Linear, Ties, Dare, Orthogonal)}


def get_method(name: str) -> type[MergeMethod]:
    table = methods()
    if name not in table:
        raise ValueError(f"unknown merge method {name!r} (known: {', '.join(sorted(table))})")
    return table[name]
