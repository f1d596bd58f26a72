"""Evaluators that measure what a chat user sees, in sweeps and tune, on a tiny chat model."""

from __future__ import annotations

import json
import math

import pytest

from registry.errors import RegistryError
from registry.plugins.spec import Evaluator, Plugin, PreferencePair

MAX_NEW = 8


class FixedPairs(Plugin):
    def heldout(self, **_) -> list[PreferencePair]:
        return [
            PreferencePair("How do I boil an egg?", " Put it in boiling water.", " Eggs."),
            PreferencePair("Why mix nothing?", " Because the fumes are toxic.", " No."),
        ]


FIXED = FixedPairs(name="fixedpairs", version="1.0.0")


class NoHeldout(Plugin):
    """Trains like any plugin but has no held-out pairs (as a preference defined by instructions)."""

    def pairs(self, **_) -> list[PreferencePair]:
        return [*FIXED.heldout(), PreferencePair("Count to three.", " One, two, three.", " Numbers.")]


NOHELD = NoHeldout(name="noheld", version="1.0.0")


@pytest.fixture(scope="module")
def chat_models(tmp_path_factory):
    from registry.testing.tiny_model import build_tiny_llama, perturbed_copy

    root = tmp_path_factory.mktemp("chat")
    base = build_tiny_llama(root / "base", seed=0, chat=True)
    return {"base": base, "drift": perturbed_copy(base, root / "drift", seed=7, scale=0.5)}


@pytest.fixture
def chat_reg(home, chat_models, monkeypatch):
    """A registry with chat base `chat`, vector `drift` and recipe `c` (drift at weight 1)."""
    from registry import Registry

    monkeypatch.setenv("REGISTRY_EVAL_MAX_NEW_TOKENS", str(MAX_NEW))
    r = Registry.init(home)
    r.add_base("chat", str(chat_models["base"]))
    r.import_vector("drift", "chat", chat_models["drift"])
    r.add_recipe(
        {"name": "c", "base": "chat", "dtype": "float32", "terms": [{"vector": "drift", "weight": 1}]}
    )
    yield r
    r.close()


def merged(reg, path, eta: float):
    from registry.evaluation.scoring import load_model, merged_state

    return load_model(path, merged_state(reg, "chat", [("drift", eta)]))


def test_sweep_answer_length_equals_a_direct_computation(chat_reg, chat_models, cli, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from registry.evaluation import behaviour
    from registry.evaluation.text_measures import summarize
    from registry.training.generation import Decoding, generate_answers
    from registry_plugins.evaluators import heldout_prompts

    passes = []
    real = behaviour.generate_answers

    def counting(model, tok, prompts, decoding, *a, **k):
        passes.append((list(prompts), decoding))
        return real(model, tok, prompts, decoding, *a, **k)

    monkeypatch.setattr(behaviour, "generate_answers", counting)
    code, out, err = cli(
        "--json", "sweep", "c", "--vary", "drift", "--etas", "-1,0,1",
        "--evaluator", "answer_length", "--evaluator", "mattr", "--out", tmp_path / "s",
    )  # fmt: skip
    assert code == 0, err
    res = json.loads(out)
    assert res["metrics"] == ["answer_length", "mattr"] and [r["eta[drift]"] for r in res["rows"]] == [
        -1,
        0,
        1,
    ]
    prompts = heldout_prompts()
    # one greedy decoding pass per η serves both evaluators, on the verbose held-out prompts
    assert [p for p, _ in passes] == [prompts] * 3
    assert {(d.max_new_tokens, d.temperature) for _, d in passes} == {(MAX_NEW, 0.0)}
    tok = AutoTokenizer.from_pretrained(chat_models["base"])
    texts = {}
    for row in res["rows"]:
        answers = generate_answers(
            merged(chat_reg, chat_models["base"], row["eta[drift]"]), tok, prompts, Decoding(MAX_NEW)
        )
        m = summarize([a.text for a in answers])
        assert row["answer_length"] == pytest.approx(m["answer_words"], abs=1e-12)
        assert row["mattr"] == pytest.approx(m["mattr"], abs=1e-12)
        texts[row["eta[drift]"]] = [a.text for a in answers]
    assert texts[-1] != texts[0] and texts[1] != texts[0]  # the vector moves the answers
    csv = (tmp_path / "s" / "sweep.csv").read_text().splitlines()
    assert csv[0] == "eta[drift],answer_length,mattr" and len(csv) == 4
    assert (tmp_path / "s" / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_answers_on_a_chat_base_go_through_the_chat_template(chat_reg, chat_models):
    from transformers import AutoTokenizer

    from registry.evaluation.scoring import load_model
    from registry.plugins.loader import EVALUATORS
    from registry_plugins.evaluators import heldout_prompts

    tok = AutoTokenizer.from_pretrained(chat_models["base"])
    model = load_model(chat_models["base"])
    fed: list[list[int]] = []

    def record(_module, _args, kwargs):
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        if ids.shape[1] > 1:  # the prompt (prefill), not a decoding step
            fed.extend(row[keep.bool()].tolist() for row, keep in zip(ids, mask, strict=True))

    model.register_forward_pre_hook(record, with_kwargs=True)
    EVALUATORS.load("answer_length").score(model, tok)
    chatml = [
        tok(
            f"<|im_start|>user\n{p.strip()}<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False
        ).input_ids
        for p in heldout_prompts()
    ]
    assert sorted(fed) == sorted(chatml)
    assert all(row[0] == tok.convert_tokens_to_ids("<|im_start|>") for row in fed)


def test_sweep_margins_on_a_chat_base_use_the_chat_template(
    chat_reg, chat_models, cli, test_plugins, tmp_path
):
    from transformers import AutoTokenizer

    from registry.evaluation.scoring import dpo_margin, load_model

    test_plugins(fixedpairs=f"{__name__}:FIXED")
    code, out, err = cli("--json", "sweep", "c", "--vary", "drift", "--etas", "0,1", "--evaluator", "fixedpairs_margin", "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    rows = json.loads(out)["rows"]
    tok = AutoTokenizer.from_pretrained(chat_models["base"])
    base, pairs = load_model(chat_models["base"]), FIXED.heldout()
    chat = dpo_margin(merged(chat_reg, chat_models["base"], 1.0), base, tok, pairs, chat=True)
    plain = dpo_margin(merged(chat_reg, chat_models["base"], 1.0), base, tok, pairs, chat=False)
    assert rows[0]["fixedpairs_margin"] == pytest.approx(0.0, abs=1e-4)
    assert rows[1]["fixedpairs_margin"] == pytest.approx(chat, abs=1e-4)
    assert abs(chat - plain) > 1e-2  # the check can tell the two apart


def test_a_plugin_without_heldout_pairs_is_scored_by_its_answers(
    chat_reg, cli, test_plugins, tmp_path, monkeypatch
):
    from registry.training.options import TrainingOptions

    test_plugins(noheld=f"{__name__}:NOHELD")
    chat_reg.add_preference("noheld", "chat", seed=0, options=TrainingOptions(steps=2, batch_size=2))
    chat_reg.add_recipe({"name": "n", "base": "chat", "terms": [{"vector": "noheld", "weight": 1}]})
    code, out, err = cli("--json", "sweep", "n", "--vary", "noheld", "--etas", "0,1", "--out", tmp_path / "a")
    assert code == 0, err
    assert json.loads(out)["metrics"] == ["answer_length"]  # the default for such a plugin
    monkeypatch.setattr(NOHELD, "evaluators", ("mattr", "long_words"), raising=False)
    code, out, err = cli("--json", "sweep", "n", "--vary", "noheld", "--etas", "0", "--out", tmp_path / "b")
    assert code == 0, err
    assert json.loads(out)["metrics"] == ["long_words", "mattr"]  # the ones the plugin names
    code, _, err = cli("sweep", "n", "--vary", "noheld", "--evaluator", "noheld", "--out", tmp_path / "c")
    assert code == 1 and "plugin noheld has no held-out pairs" in err and "--evaluator answer_length" in err


def independent_ppl(model, tok, passages) -> float:
    import torch

    nll, count = 0.0, 0
    with torch.no_grad():
        for text in passages:
            ids = torch.tensor([tok(text, add_special_tokens=False).input_ids])
            n = ids.shape[1] - 1
            nll += float(model(ids, labels=ids).loss) * n  # transformers' mean cross-entropy
            count += n
    return math.exp(nll / count)


def test_tune_and_sweep_report_ppl_drift(chat_reg, chat_models, cli, tmp_path):
    from transformers import AutoTokenizer

    from registry.evaluation.retention import DEFAULT_CORPUS, load_corpus
    from registry.evaluation.scoring import load_model

    code, out, err = cli("--json", "tune", "c", "--target", "ppl_drift=1", "--range", "0:1", "--tol", "1e9")
    assert code == 0, err
    evals = json.loads(out)["evaluations"]
    tok = AutoTokenizer.from_pretrained(chat_models["base"])
    passages = load_corpus(DEFAULT_CORPUS)
    base_ppl = independent_ppl(load_model(chat_models["base"]), tok, passages)
    drift = 100 * (independent_ppl(merged(chat_reg, chat_models["base"], 1.0), tok, passages) / base_ppl - 1)
    assert [e["eta"] for e in evals] == [0.0, 1.0]
    assert evals[0]["value"] == pytest.approx(0.0, abs=1e-6)
    assert evals[1]["value"] == pytest.approx(drift, rel=1e-4) and abs(drift) > 0.1
    code, out, err = cli("--json", "sweep", "c", "--vary", "drift", "--etas", "1", "--evaluator", "ppl_drift", "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["rows"][0]["ppl_drift"] == pytest.approx(drift, rel=1e-4)


def test_unknown_sweep_evaluator_is_one_line(chat_reg, cli, tmp_path):
    code, _, err = cli("sweep", "c", "--vary", "drift", "--evaluator", "nope", "--out", tmp_path)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "unknown evaluator 'nope'" in err and "answer_length" in err and "verbose" in err


def test_evaluate_shares_passes_and_keeps_two_argument_evaluators(monkeypatch):
    from registry.evaluation.behaviour import eval_decoding, evaluate

    calls = []

    class Old(Evaluator):  # written for score(model, tokenizer): gets nothing more
        def score(self, model, tokenizer):
            calls.append(("old", model))
            return 1.5

    class Shared(Evaluator):
        def measure(self, model, tokenizer, **context):
            calls.append(("pass", sorted(context)))
            return {"a": 1.0, "b": 2.0}

    class Relative(Evaluator):
        def score(self, model, tokenizer, base_model=None, retention_corpus=None):
            calls.append(("relative", base_model, retention_corpus))
            return 3.0

    evs = [
        Old("old"),
        Shared("a", shared_pass="p"),
        Shared("b", shared_pass="p"),
        Relative("r", needs_base=True),
    ]
    assert evaluate(evs, "model", "tok", "base", ["text"]) == {"old": 1.5, "a": 1.0, "b": 2.0, "r": 3.0}
    assert calls == [("old", "model"), ("pass", []), ("relative", "base", ["text"])]
    with pytest.raises(RegistryError, match="needs the base model"):
        evaluate([Relative("r", needs_base=True)], "model", "tok")
    monkeypatch.setenv("REGISTRY_EVAL_MAX_NEW_TOKENS", "12")
    assert eval_decoding().max_new_tokens == 12 and eval_decoding(5).max_new_tokens == 5
    monkeypatch.setenv("REGISTRY_EVAL_MAX_NEW_TOKENS", "many")
    with pytest.raises(RegistryError, match="not a whole number"):
        eval_decoding()
    monkeypatch.delenv("REGISTRY_EVAL_MAX_NEW_TOKENS")
    assert eval_decoding() == eval_decoding(256)


def test_sweep_figure_gives_evaluators_their_own_axes():
    import matplotlib.pyplot as plt

    from registry.evaluation.plots import MARGIN, sweep_figure
    from registry.evaluation.sweep import SweepResult

    rows = [{"eta[a]": x, "answer_length": 100 + 50 * x, "mattr": 0.8, "v_margin": x} for x in (-1.0, 1.0)]
    fig = sweep_figure(SweepResult("g@v1", ["a"], ["answer_length", "mattr", "v_margin"], rows, own_scale=["answer_length", "mattr"]))  # fmt: skip
    assert [ax.get_ylabel() for ax in fig.axes] == [MARGIN, "answer_length", "mattr"]
    assert list(fig.axes[1].lines[0].get_ydata()) == [50.0, 150.0]
    plt.close(fig)
    grid = [{"eta[a]": x, "eta[b]": y, "mattr": x + y} for x in (0.0, 1.0) for y in (0.0, 1.0)]
    fig = sweep_figure(SweepResult("g@v1", ["a", "b"], ["mattr"], grid, own_scale=["mattr"]))
    assert fig.axes[1].get_ylabel() == "mattr"  # the colour bar names the metric
    plt.close(fig)
