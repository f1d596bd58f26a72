"""The interface every merge method implements, and the in-memory reader `merge` uses.

A method declares its parameters as data (so recipes, validation and help treat every
method alike) and merges one tensor: float32 base plus float32 deltas and weights.

Every built-in method merges row blocks, so memory stays flat whatever the tensor size:

- `prepare(name, reader, rows)` runs once per tensor before its blocks (default: nothing).
  `reader.map(fn)` streams the tensor's deltas as row blocks, `fn(deltas)` on each (flat
  float32 arrays, one per term, on a thread pool), and yields the results in row order.
  TIES uses it for its exact per-tensor top-k thresholds.
- `merge_block(name, base, deltas, weights, state, start)` merges one row block: `state` is
  what `prepare` returned, `start` the flat index of the block's first element (DARE keys
  its counter-based drop mask on it, so the mask never depends on the block boundaries).
- `merge(name, base, deltas, weights)` merges a whole tensor in memory (prepare, then one
  block): the reference the block-wise path must equal, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from registry.util.numbers import as_number

T = TypeVar("T")


class DeltaReader(Protocol):
    size: int  # elements of the tensor
    terms: int  # deltas (recipe terms)

    def map(self, fn: Callable[[list[np.ndarray]], T]) -> Iterator[T]: ...


class InMemory:
    """A DeltaReader over whole tensors already in memory (for `merge`)."""

    def __init__(self, deltas: list[np.ndarray], block: int | None = None):
        self.flat = [np.ascontiguousarray(d, dtype=np.float32).reshape(-1) for d in deltas]
        self.size = self.flat[0].size if self.flat else 0
        self.terms = len(self.flat)
        self.block = block or max(self.size, 1)

    def map(self, fn: Callable[[list[np.ndarray]], T]) -> Iterator[T]:
        for a in range(0, max(self.size, 1), self.block):
            yield fn([d[a : a + self.block] for d in self.flat])


@dataclass(frozen=True)
class Param:
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None


@dataclass
class MergeMethod:
    name: ClassVar[str]
    parameters: ClassVar[dict[str, Param]] = {}
    # block-wise methods see row blocks (all built-in ones); a third-party method that sets
    # this False gets whole tensors in one block (memory then grows with the largest tensor)
    blockwise: ClassVar[bool] = True
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def validate_parameters(cls, given: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(given) - set(cls.parameters))
        if unknown:
            raise ValueError(f"method {cls.name} has no parameter {', '.join(unknown)}")
        out = {}
        for key, p in cls.parameters.items():
            value = as_number(given.get(key, p.default), f"parameter {key} of {cls.name}")
            if p.type is int and (not math.isfinite(value) or value != int(value)):
                raise ValueError(f"parameter {key} of {cls.name} must be a whole number, not {value!r}")
            value = p.type(value)
            if (p.low is not None and value < p.low) or (p.high is not None and value > p.high):
                raise ValueError(f"parameter {key} of {cls.name} must be in [{p.low}, {p.high}]")
            out[key] = value
        return out

    def prepare(self, name: str, reader: DeltaReader, rows: int) -> Any:
        """A pre-pass over one tensor's deltas before its blocks are merged; None by default."""
        return None

    def merge_block(
        self,
        name: str,
        base: np.ndarray,
        deltas: list[np.ndarray],
        weights: list[float],
        state: Any,
        start: int,
    ) -> np.ndarray:
        """Merge one row block (float32 base and deltas of the same shape)."""
        if type(self).merge is not MergeMethod.merge:  # a method written against `merge` alone
            return self.merge(name, base, deltas, weights)
        raise NotImplementedError

    def merge(
        self, name: str, base: np.ndarray, deltas: list[np.ndarray], weights: list[float]
    ) -> np.ndarray:
        """Merge a whole tensor in memory: prepare, then one block."""
        rows = base.shape[0] if base.ndim else 1
        state = self.prepare(name, InMemory(deltas), rows)
        return self.merge_block(name, base, deltas, weights, state, 0)
