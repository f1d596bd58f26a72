"""Plain-text measures of generated answers: length, lexical variety, repetition, register.

A preference vector that makes answers longer is only useful if they stay fluent: these
numbers tell a longer answer from a looping one (the moving-average type-token ratio and
repeated word 4-grams drop and rise when a model repeats itself) and a technical register
from a plain one (long words, words per sentence). Pure Python, so benchmarks and
evaluators can use them without loading a model.

Words are regex tokens (letters and digits, with inner apostrophes: "don't" is one word),
compared case-insensitively. Every measure of an empty answer is 0.0.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# a sentence ends at . ! ? followed by space or the end, or at a line break (list items, headings)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
MATTR_WINDOW = 50
LONG_WORD_LETTERS = 9


def words(text: str) -> list[str]:
    """The answer's words, lower-cased."""
    return [w.lower() for w in WORD.findall(text)]


def answer_words(text: str) -> int:
    """How many words an answer has."""
    return len(words(text))


def distinct_word_ratio(text: str) -> float:
    """Distinct words / words (the type-token ratio): falls as an answer repeats itself,
    but also as any answer grows; `mattr` does not depend on length."""
    w = words(text)
    return len(set(w)) / len(w) if w else 0.0


def mattr(text: str, window: int = MATTR_WINDOW) -> float:
    """Moving-average type-token ratio (Covington & McFall 2010): the mean distinct-word ratio
    of every `window`-word stretch; the plain ratio for an answer shorter than the window."""
    w = words(text)
    if len(w) <= window:
        return distinct_word_ratio(text)
    counts = Counter(w[:window])
    total = len(counts)
    for i in range(window, len(w)):  # slide by one word: add w[i], drop w[i - window]
        counts[w[i]] += 1
        old = w[i - window]
        counts[old] -= 1
        if not counts[old]:
            del counts[old]
        total += len(counts)
    return total / ((len(w) - window + 1) * window)


def repeated_ngram_fraction(text: str, n: int = 4) -> float:
    """1 − distinct word n-grams / word n-grams: the share of an answer's n-grams that repeat
    an earlier one (0 for none, near 1 for a loop). 0.0 when the answer has fewer than n words."""
    w = words(text)
    grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def repeated_4grams(text: str) -> float:
    return repeated_ngram_fraction(text, 4)


def long_word_fraction(text: str, letters: int = LONG_WORD_LETTERS) -> float:
    """Share of words with at least `letters` letters: a technical register uses more."""
    w = words(text)
    return sum(1 for x in w if sum(c.isalpha() for c in x) >= letters) / len(w) if w else 0.0


def sentences(text: str) -> list[str]:
    """Sentences (or lines) that hold at least one word."""
    return [s for s in SENTENCE_END.split(text) if WORD.search(s)]


def words_per_sentence(text: str) -> float:
    s = sentences(text)
    return answer_words(text) / len(s) if s else 0.0


# name -> measure of one answer; `summarize` reports the mean of each over the answers
MEASURES: dict[str, Callable[[str], float]] = {
    "answer_words": answer_words,
    "distinct_words": distinct_word_ratio,
    "mattr": mattr,
    "repeated_4grams": repeated_4grams,
    "long_words": long_word_fraction,
    "words_per_sentence": words_per_sentence,
}


def per_answer(texts: Sequence[str]) -> list[dict[str, float]]:
    """Every measure of every answer, in order."""
    return [{name: float(f(t)) for name, f in MEASURES.items()} for t in texts]


def summarize(texts: Sequence[str]) -> dict[str, float]:
    """The mean of each measure over the answers (each answer weighs the same)."""
    if not texts:
        raise ValueError("no answers to summarize")
    rows = per_answer(texts)
    return {name: sum(r[name] for r in rows) / len(rows) for name in MEASURES}
