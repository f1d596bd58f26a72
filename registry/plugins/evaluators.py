"""Evaluators: model-level metrics found through the `registry.evaluators` entry-point group.

Used by `tune` (and any caller) beside the plugins' held-out DPO margins. An evaluator is an
`Evaluator` instance (or a zero-argument callable returning one):

    [project.entry-points."registry.evaluators"]
    answer_length = "my_package.metrics:answer_length"
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache

from registry.errors import PluginError

GROUP = "registry.evaluators"


@dataclass
class Evaluator:
    name: str
    description: str = ""

    def score(self, model, tokenizer) -> float:
        """One number for a (merged) causal LM and its tokenizer; deterministic."""
        raise NotImplementedError


@cache
def _entry_points():
    from importlib.metadata import entry_points

    wanted = {n.strip() for n in os.environ.get("REGISTRY_EVALUATORS", "").split(",") if n.strip()}
    return {ep.name: ep for ep in entry_points(group=GROUP) if not wanted or ep.name in wanted}


def names() -> list[str]:
    return sorted(_entry_points())


def load(name: str) -> Evaluator:
    eps = _entry_points()
    if name not in eps:
        raise PluginError(f"unknown evaluator {name!r} (installed: {', '.join(sorted(eps)) or 'none'})")
    ep = eps[name]
    try:
        obj = ep.load()
        if callable(obj) and not isinstance(obj, Evaluator):
            obj = obj()
    except Exception as e:
        raise PluginError(f"evaluator {name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}") from e
    if not isinstance(obj, Evaluator):
        raise PluginError(f"evaluator {name!r} ({ep.value}) is a {type(obj).__name__}, not an Evaluator")
    return obj
