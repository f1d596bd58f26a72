"""What plugins provide. Kept small: data in, the core does the training and the merging.

A preference plugin is any `Plugin` instance (or a zero-argument callable returning one)
exposed in the `registry.plugins` entry-point group; an evaluator (a model-level metric used
by `tune` and `sweep` beside the plugins' held-out DPO margins) is an `Evaluator` in the
`registry.evaluators` group:

    [project.entry-points."registry.plugins"]
    verbose = "my_package.verbose:plugin"

    [project.entry-points."registry.evaluators"]
    answer_length = "my_package.metrics:answer_length"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str

    def switched(self) -> PreferencePair:
        """The θ− training pair: the same preference with its labels swapped."""
        return PreferencePair(self.prompt, self.rejected, self.chosen)


@dataclass
class Plugin:
    name: str
    version: str
    description: str = ""
    # click.Option objects: extra `add-preference` options, passed to pairs() by name
    options: list[Any] = field(default_factory=list)

    def pairs(self, **options: Any) -> list[PreferencePair]:
        """Training pairs (prompt, chosen, rejected)."""
        raise NotImplementedError

    def heldout(self, **options: Any) -> list[PreferencePair]:
        """Held-out pairs for the evaluator (the core scores the DPO margin on them)."""
        return []


@dataclass
class Evaluator:
    name: str
    description: str = ""

    def score(self, model, tokenizer) -> float:
        """One number for a (merged) causal LM and its tokenizer; deterministic."""
        raise NotImplementedError
