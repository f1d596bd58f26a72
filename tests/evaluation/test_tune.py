"""`registry tune`: a bracketing search for η on in-memory merges, recorded as a new version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from registry.errors import PluginError, RegistryError, TargetUnreachable
from registry.evaluation.tune import parse_range, parse_target, search
from registry.training.options import TrainingOptions

FAST = TrainingOptions(steps=6, batch_size=4, learning_rate=1e-3)
# the hand-written detailed-over-terse pairs (the shipped verbose plugin now generates its own)
HANDWRITTEN = {
    "data": str(Path(__file__).parent.parent / "data" / "verbose_pairs.jsonl"),
    "heldout_fraction": 0.2,
}


def test_search_brackets_a_monotone_function_and_refuses_outside():
    eta, value, evals = search(lambda x: x**3, 0.125, 0.0, 2.0, 1e-6, 60)
    assert eta == pytest.approx(0.5, abs=1e-4) and value == pytest.approx(0.125, abs=1e-6)
    assert [e["eta"] for e in evals[:2]] == [0.0, 2.0] and len(evals) < 60
    with pytest.raises(TargetUnreachable, match=r"target 9 is outside what η in \[0, 2\] reaches \(0 … 8\)"):
        search(lambda x: x**3, 9.0, 0.0, 2.0, 1e-6, 60)
    assert parse_target("verbose_margin=2.5") == ("verbose_margin", 2.5) and parse_range("-1:3") == (
        -1.0,
        3.0,
    )
    with pytest.raises(RegistryError, match="expected METRIC=VALUE"):
        parse_target("verbose_margin")
    with pytest.raises(RegistryError, match="LO < HI"):
        parse_range("2:1")


def test_tune_reaches_the_target_and_records_the_search(sqlite_reg, cli, tmp_path):
    from registry.evaluation.scoring import heldout_margin

    sqlite_reg.add_preference("pairs", "tiny", "verbose", seed=0, options=FAST, plugin_options=HANDWRITTEN)
    sqlite_reg.add_recipe(
        {"name": "v", "base": "tiny", "dtype": "float32", "terms": [{"vector": "verbose", "weight": 1}]}
    )
    full = heldout_margin(sqlite_reg, "tiny", [("verbose", 1.0)], "pairs", plugin_options=HANDWRITTEN)
    target = round(full / 2, 3)
    code, out, err = cli(
        "--json",
        "tune",
        "v",
        "--target",
        f"pairs_margin={target}",
        "--range",
        "0:1",
        "--plot",
        tmp_path / "t.png",
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["recipe"] == "v@v2" and res["created"] and res["from"] == "v@v1"
    assert res["evaluations"][0] == {"eta": 0.0, "value": pytest.approx(0.0, abs=1e-3)}
    assert res["evaluations"][1]["value"] == pytest.approx(full, rel=1e-6)
    assert abs(res["value"] - target) <= res["tolerance"] and 0 < res["eta"] < 1
    assert sqlite_reg.recipe("v@v2").terms[0].weight == res["eta"]
    # independent re-evaluation of the chosen η
    again = heldout_margin(sqlite_reg, "tiny", [("verbose", res["eta"])], "pairs", plugin_options=HANDWRITTEN)
    assert again == pytest.approx(res["value"], abs=1e-4)
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shown = json.loads(cli("--json", "recipe", "show", "v@v2")[1])["notes"]["tune"]
    assert shown["eta"] == res["eta"] and shown["target"] == target and shown["metric"] == "pairs_margin"
    sqlite_reg.materialize("v@v2", tmp_path / "out")
    lock = json.loads((tmp_path / "out" / "registry-lock.json").read_text())
    assert lock["notes"]["tune"]["evaluations"] == res["evaluations"]
    card = yaml.safe_load((tmp_path / "out" / "README.md").read_text().split("---")[1])
    assert card["preference_notes"]["tune"]["eta"] == res["eta"]


def test_tune_refusals(sqlite_reg, models, cli, monkeypatch):
    monkeypatch.setenv("REGISTRY_EVAL_MAX_NEW_TOKENS", "4")  # at most 4 words per answer
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    sqlite_reg.import_vector("harmless", "tiny", models["plus2"], models["minus"])
    terms = [{"vector": "helpful", "weight": 1}, {"vector": "harmless", "weight": 1}]
    sqlite_reg.add_recipe({"name": "hh", "base": "tiny", "terms": terms})
    code, _, err = cli("tune", "hh", "--target", "answer_length=1000", "--vary", "helpful", "--range", "0:1")
    assert code == 1 and "target 1000 is outside what η in [0, 1] reaches" in err and "widen --range" in err
    # verbose writes its own pairs: it has held-out prompts, not held-out pairs
    with pytest.raises(RegistryError, match=r"plugin verbose has no held-out pairs.*answer_length="):
        sqlite_reg.tune("hh", "verbose_margin", 1.0, vary="helpful")
    assert [r.ref for r in sqlite_reg.recipes()] == ["hh@v1"]  # nothing added
    with pytest.raises(RegistryError, match="has 2 terms: pass --vary VECTOR"):
        sqlite_reg.tune("hh", "verbose_margin", 1.0)
    with pytest.raises(RegistryError, match=r"unknown metric 'nope'.*answer_length"):
        sqlite_reg.tune("hh", "nope", 1.0, vary="helpful")


def test_shipped_evaluator_scores_answer_length(sqlite_reg, monkeypatch):
    from transformers import AutoTokenizer

    from registry.evaluation.scoring import load_model
    from registry.evaluation.text_measures import answer_words
    from registry.plugins.loader import EVALUATORS
    from registry.training.generation import Decoding, generate_answers
    from registry_plugins.evaluators import heldout_prompts

    shipped = {
        "answer_length",
        "distinct_words",
        "mattr",
        "repeated_4grams",
        "long_words",
        "words_per_sentence",
    }
    assert shipped | {"ppl_drift"} <= set(EVALUATORS.names())
    monkeypatch.setenv("REGISTRY_EVAL_MAX_NEW_TOKENS", "6")
    path = sqlite_reg.base("tiny").path  # no chat template: the plain prompt
    model, tok = load_model(path), AutoTokenizer.from_pretrained(path)
    score = EVALUATORS.load("answer_length").score(model, tok)
    answers = generate_answers(model, tok, heldout_prompts(), Decoding(max_new_tokens=6))
    assert score == pytest.approx(sum(answer_words(a.text) for a in answers) / len(answers), abs=1e-12)
    assert 0.0 <= score <= 6.0  # a byte-level token never holds two words
    with pytest.raises(PluginError, match="unknown evaluator 'x'"):
        EVALUATORS.load("x")
