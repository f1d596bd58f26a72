"""Merge methods, one module each, all with the same small interface.

A method declares its parameters as data (so recipes, validation and help treat every
method alike) and merges one tensor: float32 base plus float32 deltas and weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


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
    # blockwise methods see row blocks; others need whole tensors (e.g. a per-tensor top-k)
    blockwise: ClassVar[bool] = True
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def validate_parameters(cls, given: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(given) - set(cls.parameters))
        if unknown:
            raise ValueError(f"method {cls.name} has no parameter {', '.join(unknown)}")
        out = {}
        for key, p in cls.parameters.items():
            value = given.get(key, p.default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"parameter {key} of {cls.name} must be a number, not {value!r}")
            value = p.type(value)
            if (p.low is not None and value < p.low) or (p.high is not None and value > p.high):
                raise ValueError(f"parameter {key} of {cls.name} must be in [{p.low}, {p.high}]")
            out[key] = value
        return out

    def merge(
        self, name: str, base: np.ndarray, deltas: list[np.ndarray], weights: list[float]
    ) -> np.ndarray:
        raise NotImplementedError


def methods() -> dict[str, type[MergeMethod]]:
    from registry.methods.dare import Dare
    from registry.methods.linear import Linear
    from registry.methods.orthogonal import Orthogonal
    from registry.methods.ties import Ties

    return {m.name: m for m in (Linear, Ties, Dare, Orthogonal)}


def get_method(name: str) -> type[MergeMethod]:
    table = methods()
    if name not in table:
        raise ValueError(f"unknown merge method {name!r} (known: {', '.join(sorted(table))})")
    return table[name]
