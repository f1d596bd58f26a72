"""What a preference plugin provides. Kept small: data in, the core does the training.

A plugin is any `Plugin` instance (or a zero-argument callable returning one) exposed in the
`registry.plugins` entry-point group:

    [project.entry-points."registry.plugins"]
    verbose = "my_package.verbose:plugin"
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
