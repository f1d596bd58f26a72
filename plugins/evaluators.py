"""Shipped evaluators: what a chat user sees (answer length, variety, repetition, register)
and what the preference costs (perplexity drift on the retention corpus).

The answer evaluators share one pass: greedy answers, through the chat template when the
base has one, to the `verbose` plugin's held-out prompts (training never sees them), at
most `max_new_tokens` each (default 256; $REGISTRY_EVAL_MAX_NEW_TOKENS overrides it, e.g.
for tests on tiny models). A sweep asking for answer_length and mattr decodes once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry.errors import RegistryError
from registry.evaluation.behaviour import ANSWER_METRICS, answer_measures, eval_decoding, ppl_drift
from registry.plugins.spec import Evaluator


def heldout_prompts() -> list[str]:
    """The verbose plugin's held-out prompts (its held-out pairs' prompts for a pairs plugin)."""
    from registry_plugins.verbose import plugin as verbose  # only the answer evaluators need it

    if hasattr(verbose, "heldout_prompts"):
        prompts = list(verbose.heldout_prompts())
    else:
        prompts = [p.prompt for p in verbose.heldout()]
    if not prompts:
        raise RegistryError("the verbose plugin has no held-out prompts to evaluate answers on")
    return prompts


@dataclass
class ChatAnswers(Evaluator):
    """One measure of greedy chat answers; all of them read the same answers."""

    shared_pass: str | None = "verbose-heldout-chat-answers"
    max_new_tokens: int | None = None  # None: $REGISTRY_EVAL_MAX_NEW_TOKENS, else 256

    def measure(self, model, tokenizer, **_: Any) -> dict[str, float]:
        _answers, m = answer_measures(model, tokenizer, heldout_prompts(), eval_decoding(self.max_new_tokens))
        return {name: m[key] for name, key in ANSWER_METRICS.items()}

    def score(self, model, tokenizer, **context: Any) -> float:
        return self.measure(model, tokenizer, **context)[self.name]


@dataclass
class PerplexityDrift(Evaluator):
    """Perplexity on the retention corpus relative to the base, in percent."""

    needs_base: bool = True

    def score(self, model, tokenizer, base_model=None, retention_corpus=None, **_: Any) -> float:
        if base_model is None or retention_corpus is None:
            raise RegistryError("ppl_drift needs the base model and the retention corpus")
        return ppl_drift(model, base_model, tokenizer, retention_corpus)


_WHAT = "of greedy chat answers to the verbose plugin's held-out prompts"
answer_length = ChatAnswers("answer_length", f"Mean words {_WHAT}.")
distinct_words = ChatAnswers("distinct_words", f"Mean distinct-word ratio (unique/total words) {_WHAT}.")
mattr = ChatAnswers("mattr", f"Mean moving-average type-token ratio (50-word window) {_WHAT}.")
repeated_4grams = ChatAnswers("repeated_4grams", f"Mean share of repeated word 4-grams {_WHAT}.")
long_words = ChatAnswers("long_words", f"Mean share of words with 9+ letters {_WHAT}.")
words_per_sentence = ChatAnswers("words_per_sentence", f"Mean words per sentence {_WHAT}.")
ppl_drift_evaluator = PerplexityDrift(
    "ppl_drift", "Perplexity change on the retention corpus vs the base, in percent."
)
