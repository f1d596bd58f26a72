"""Text measures of answers, against values computed by hand and a brute-force MATTR."""

from __future__ import annotations

import random

import pytest

from registry.evaluation import text_measures as tm


def test_words_are_lower_cased_regex_tokens():
    assert tm.words("Don't stop—the 2 Dogs' bark!  Café_au lait") == [
        "don't",
        "stop",
        "the",
        "2",
        "dogs",
        "bark",
        "café",
        "au",
        "lait",
    ]
    assert tm.answer_words("One, two; three.") == 3 and tm.answer_words("") == 0


def test_ratios_by_hand():
    assert tm.distinct_word_ratio("The cat saw the dog") == pytest.approx(4 / 5)
    # 4-grams of "a b c d a b c d": abcd bcda cdab dabc abcd → 4 distinct of 5
    assert tm.repeated_4grams("a b c d a b c d") == pytest.approx(1 - 4 / 5)
    assert tm.repeated_ngram_fraction("a a a a", n=2) == pytest.approx(1 - 1 / 3)
    assert tm.repeated_4grams("a b c") == 0.0  # no 4-gram at all
    # 13 and 15 letters are long, "cat" is not, nine digits have no letters
    assert tm.long_word_fraction("extraordinary cat internationally 123456789") == pytest.approx(2 / 4)
    assert tm.long_word_fraction("abcdefghi abcdefgh") == pytest.approx(1 / 2)  # 9 letters count, 8 do not


def test_mattr_by_hand():
    assert tm.mattr("a b a") == pytest.approx(2 / 3)  # shorter than the window: the plain ratio
    # windows of 3 over a b a b c: aba (2), bab (2), abc (3)
    assert tm.mattr("a b a b c", window=3) == pytest.approx(7 / 9)
    # 50 distinct words, then the last one twice more: windows with 50, 49 and 48 distinct words
    text = " ".join([f"w{i}" for i in range(50)] + ["w49", "w49"])
    assert tm.mattr(text) == pytest.approx((50 + 49 + 48) / 150)
    assert tm.mattr(" ".join(["x"] * 60)) == pytest.approx(1 / 50)


def test_mattr_equals_brute_force_on_random_texts():
    rng = random.Random(0)
    vocab = [f"v{i}" for i in range(30)]
    for n in (0, 1, 49, 50, 51, 120, 400):
        w = [rng.choice(vocab) for _ in range(n)]
        if n <= 50:
            expected = len(set(w)) / n if n else 0.0
        else:
            expected = sum(len(set(w[i : i + 50])) / 50 for i in range(n - 49)) / (n - 49)
        assert tm.mattr(" ".join(w)) == pytest.approx(expected, abs=1e-12), n


def test_sentences_and_words_per_sentence():
    assert tm.words_per_sentence("One two three. Four five! Six?") == pytest.approx(6 / 3)
    # list items are lines; the value 3.5 does not end a sentence
    assert tm.sentences("Steps:\n- boil 3.5 cups\n\n- add egg") == ["Steps:", "- boil 3.5 cups", "- add egg"]
    assert tm.words_per_sentence("Steps:\n- boil 3.5 cups\n\n- add egg") == pytest.approx(7 / 3)
    assert tm.words_per_sentence("...") == 0.0


def test_empty_answer_measures_zero_and_summary_is_the_mean():
    assert all(f("") == 0.0 for f in tm.MEASURES.values())
    got = tm.summarize(["a b", "a a a a a"])
    assert got == pytest.approx(
        {
            "answer_words": (2 + 5) / 2,
            "distinct_words": (1 + 1 / 5) / 2,
            "mattr": (1 + 1 / 5) / 2,
            "repeated_4grams": (0 + (1 - 1 / 2)) / 2,  # "a a a a a": two 4-grams, one distinct
            "long_words": 0.0,
            "words_per_sentence": (2 + 5) / 2,
        }
    )
    assert tm.per_answer(["a b"])[0]["answer_words"] == 2.0
    with pytest.raises(ValueError, match="no answers"):
        tm.summarize([])
