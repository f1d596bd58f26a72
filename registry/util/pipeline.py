"""Ordered parallel map: run jobs on a thread pool a few ahead, yield results in order.

Streaming jobs here are numpy, blosc, hashlib and file I/O, which all release the GIL, so
a small pool keeps both cores busy while the consumer sees one deterministic sequence.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")
L = TypeVar("L")


def labelled(label: L, job: Callable[[], T]) -> Callable[[], tuple[L, T]]:
    """A job whose result carries a label, so one ordered stream can span many tensors."""
    return lambda: (label, job())


def ordered(pool: Executor, jobs: Iterable[Callable[[], T]], window: int) -> Iterator[T]:
    """Results of `jobs` in submission order, with at most `window` in flight (memory bound)."""
    pending: deque = deque()
    for job in jobs:
        pending.append(pool.submit(job))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
