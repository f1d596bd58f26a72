"""Behaviour measured the way users chat: greedy answers through the chat template, their
text measures, and the perplexity drift on the retention corpus.

A DPO margin says the vector moved log-probabilities; users see answers. Sweeps, tune and
the benchmarks decode answers exactly as a chat user gets them (the chat template when the
base has one, greedy, `generation.generate_answers`) and summarize them with
`text_measures`. Evaluators that read the same answers share one decoding pass (`evaluate`).
"""

from __future__ import annotations

import hashlib
import os
import weakref
from collections.abc import Sequence
from typing import Any

from registry.errors import RegistryError
from registry.evaluation.retention import perplexity
from registry.evaluation.text_measures import summarize
from registry.plugins.spec import Evaluator
from registry.training.generation import Answer, Decoding, generate_answers

MAX_NEW_TOKENS = 256  # answers to real questions are cut here (a long answer is 150–250 words)
MAX_NEW_TOKENS_ENV = "REGISTRY_EVAL_MAX_NEW_TOKENS"


def eval_decoding(max_new_tokens: int | None = None, batch_size: int = 16) -> Decoding:
    """Greedy decoding for evaluations: `max_new_tokens`, else $REGISTRY_EVAL_MAX_NEW_TOKENS, else 256."""
    if max_new_tokens is None:
        text = os.environ.get(MAX_NEW_TOKENS_ENV, "").strip()
        try:
            max_new_tokens = int(text) if text else MAX_NEW_TOKENS
        except ValueError:
            raise RegistryError(f"{MAX_NEW_TOKENS_ENV}={text!r} is not a whole number of tokens") from None
        if max_new_tokens < 1:
            raise RegistryError(f"{MAX_NEW_TOKENS_ENV} must be at least 1, not {max_new_tokens}")
    return Decoding(max_new_tokens=max_new_tokens, temperature=0.0, batch_size=batch_size)


# evaluator name -> key of answer_measures (text_measures.summarize, plus `finished`)
ANSWER_METRICS = {
    "answer_length": "answer_words",
    "distinct_words": "distinct_words",
    "mattr": "mattr",
    "repeated_4grams": "repeated_4grams",
    "long_words": "long_words",
    "words_per_sentence": "words_per_sentence",
    "finished": "finished",
}


def answer_measures(
    model, tok, prompts: Sequence[str], decoding: Decoding | None = None
) -> tuple[list[Answer], dict[str, float]]:
    """Greedy chat answers to `prompts` and the means of their text measures, plus `finished`:
    the share of answers that ended on their own before the token limit."""
    if not prompts:
        raise RegistryError("no prompts to answer")
    answers = generate_answers(model, tok, list(prompts), decoding or eval_decoding())
    measures = summarize([a.text for a in answers])
    measures["finished"] = sum(a.finished for a in answers) / len(answers)
    return answers, measures


def _corpus_key(passages: Sequence[str]) -> str:
    return hashlib.sha256("\0".join(passages).encode()).hexdigest()


# base model -> {corpus digest: perplexity}; weak, so a dropped base frees its entry
_BASE_PPL: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def base_perplexity(base_model, tok, passages: Sequence[str]) -> float:
    """The base's perplexity on the passages, computed once per base model object (a sweep
    scores many merges against the same base)."""
    key = _corpus_key(passages)
    known = _BASE_PPL.setdefault(base_model, {})
    if key not in known:
        known[key] = perplexity(base_model, tok, list(passages))[0]
    return known[key]


def ppl_drift(model, base_model, tok, passages: Sequence[str]) -> float:
    """Perplexity drift in percent: 100 · (ppl(model) / ppl(base) − 1) on the passages."""
    if not passages:
        raise RegistryError("no retention passages to measure perplexity on")
    return 100.0 * (
        perplexity(model, tok, list(passages))[0] / base_perplexity(base_model, tok, passages) - 1
    )


def evaluate(
    evaluators: Sequence[Evaluator],
    model,
    tok,
    base_model=None,
    retention_corpus: Sequence[str] | None = None,
) -> dict[str, float]:
    """Each evaluator's value for `model`, by name; evaluators with the same `shared_pass`
    key are measured once. Only evaluators with `needs_base` are given the base and corpus,
    so evaluators written for `score(model, tokenizer)` keep working."""
    out: dict[str, float] = {}
    passes: dict[str, dict[str, float]] = {}
    for ev in evaluators:
        context: dict[str, Any] = {}
        if getattr(ev, "needs_base", False):
            if base_model is None or retention_corpus is None:
                raise RegistryError(f"evaluator {ev.name!r} needs the base model and the retention corpus")
            context = {"base_model": base_model, "retention_corpus": list(retention_corpus)}
        key = getattr(ev, "shared_pass", None)
        if key is None:
            out[ev.name] = float(ev.score(model, tok, **context))
            continue
        if key not in passes:
            passes[key] = ev.measure(model, tok, **context)
        if ev.name not in passes[key]:
            raise RegistryError(f"evaluator {ev.name!r}: its pass {key!r} did not report it")
        out[ev.name] = float(passes[key][ev.name])
    return out
