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
    example: str = ""  # the command line `add-preference PLUGIN --help` shows

    def pairs(self, **options: Any) -> list[PreferencePair]:
        """Training pairs (prompt, chosen, rejected)."""
        raise NotImplementedError

    def heldout(self, **options: Any) -> list[PreferencePair]:
        """Held-out pairs for the evaluator (the core scores the DPO margin on them)."""
        return []


@dataclass(frozen=True)
class Contrast:
    """Two system instructions that pull a base's answers apart in the preferred direction."""

    positive: str
    negative: str


@dataclass(frozen=True)
class PairGeneration:
    """How the pinned base writes a run's pairs: how many, how long, how it samples.

    Sampling (not greedy) gives varied, on-policy answers; the seed is the data's seed, not
    the training seed, so runs with different training seeds can share the same pairs.
    """

    pairs: int = 48  # training prompts used (the first N of the plugin's training prompts)
    max_new_tokens_positive: int = 200
    max_new_tokens_negative: int = 80
    temperature: float = 0.7
    top_p: float = 0.9
    batch_size: int = 16
    sample_seed: int = 0


@dataclass
class InstructedPlugin(Plugin):
    """A preference defined by instructions instead of pairs (contrastive distillation, RLCD).

    For each training prompt the core has the pinned base answer once under a positive and
    once under a negative instruction (the system message), and trains DPO on the bare
    prompt with the two answers: the vector learns the instructed behaviour without the
    instruction. `pairs()` is not used.
    """

    def contrasts(self, **options: Any) -> list[Contrast]:
        """One or more (paraphrased) instruction pairs; each prompt draws one."""
        raise NotImplementedError

    def prompts(self, **options: Any) -> list[str]:
        """Training prompts (the core takes the first `generation().pairs` of them)."""
        raise NotImplementedError

    def heldout_prompts(self, **options: Any) -> list[str]:
        """Prompts training never sees, for evaluations."""
        return []

    def generation(self, **options: Any) -> PairGeneration:
        return PairGeneration()

    def contrast_held(self, chosen: str, rejected: str) -> str | None:
        """Why a generated pair is dropped (None: keep it). The core already drops empty and
        identical answers; a plugin that can measure its direction checks it here."""
        return None

    def heldout(self, **options: Any) -> list[PreferencePair]:
        return []


@dataclass
class Evaluator:
    name: str
    description: str = ""
    # Evaluators with the same key read one pass over a model (e.g. the same generated answers):
    # a caller that wants several of them calls `measure` once and reads each one's name.
    shared_pass: str | None = None
    # True: the caller also passes base_model= (the unmerged base, for metrics relative to it)
    # and retention_corpus= (the registry's retention passages, a list of str)
    needs_base: bool = False

    def score(self, model, tokenizer, **context: Any) -> float:
        """One number for a (merged) causal LM and its tokenizer; deterministic."""
        raise NotImplementedError

    def measure(self, model, tokenizer, **context: Any) -> dict[str, float]:
        """Every metric of this evaluator's shared pass, by evaluator name (at least its own)."""
        return {self.name: float(self.score(model, tokenizer, **context))}
