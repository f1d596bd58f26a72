"""Recorded evaluations (`sweep --record`) on a tiny chat model: numbers equal an independent
computation, same seed → same record, a two-term grid has every point, CLI reads them back."""

from __future__ import annotations

import json
import math

import pytest

MAX_NEW = 8


@pytest.fixture(scope="module")
def chat_models(tmp_path_factory):
    from registry.testing.tiny_model import build_tiny_llama, perturbed_copy

    root = tmp_path_factory.mktemp("chat")
    base = build_tiny_llama(root / "base", seed=0, chat=True)
    return {
        "base": base,
        "drift": perturbed_copy(base, root / "drift", seed=7, scale=0.5),
        "other": perturbed_copy(base, root / "other", seed=8, scale=0.5),
    }


@pytest.fixture
def chat_reg(home, chat_models, monkeypatch):
    """Chat base `chat`, vectors `drift` and `other`, recipe `c` (drift 1, other 0.5)."""
    from registry import Registry

    monkeypatch.setenv("REGISTRY_EVAL_MAX_NEW_TOKENS", str(MAX_NEW))
    r = Registry.init(home)
    r.add_base("chat", str(chat_models["base"]))
    r.import_vector("drift", "chat", chat_models["drift"])
    r.import_vector("other", "chat", chat_models["other"])
    r.add_recipe(
        {
            "name": "c",
            "base": "chat",
            "dtype": "float32",
            "terms": [{"vector": "drift", "weight": 1}, {"vector": "other", "weight": 0.5}],
        }
    )
    yield r
    r.close()


def merged(reg, path, terms):
    from registry.evaluation.scoring import load_model, merged_state

    return load_model(path, merged_state(reg, "chat", terms))


def ppl(model, tok, passages) -> float:
    """Perplexity from transformers' own loss (not the registry's code)."""
    import torch

    nll, count = 0.0, 0
    with torch.no_grad():
        for text in passages:
            ids = torch.tensor([tok(text, add_special_tokens=False).input_ids])
            n = ids.shape[1] - 1
            nll += float(model(ids, labels=ids).loss) * n
            count += n
    return math.exp(nll / count)


def test_recorded_vector_evaluation_equals_an_independent_computation(chat_reg, chat_models):
    from transformers import AutoTokenizer

    from registry.evaluation.retention import DEFAULT_CORPUS, load_corpus
    from registry.evaluation.scoring import load_model
    from registry.evaluation.text_measures import answer_words, mattr
    from registry.training.generation import Decoding, generate_answers
    from registry_plugins.evaluators import heldout_prompts

    rec = chat_reg.record_sweep("drift", etas=[-1.0, 0.0, 1.0], prompts=3, samples=3)
    assert chat_reg.evaluation(rec.id) == rec and chat_reg.evaluations("drift") == [rec]
    assert rec.subject_kind == "vector" and rec.subject_ref == "drift@v1"
    assert rec.subject_digest == chat_reg.vector("drift").digest
    assert rec.base_digest == chat_reg.base("chat").digest
    assert rec.grid == {"drift": [-1.0, 0.0, 1.0]}
    assert set(rec.metric_names) >= {"answer_length", "mattr", "repeated_4grams", "ppl_drift"}
    assert set(rec.evaluators) == set(rec.metric_names)
    assert rec.decoding["max_new_tokens"] == MAX_NEW and rec.decoding["temperature"] == 0.0
    prompts = heldout_prompts()[:3]
    assert rec.details["prompts"] == prompts and "(first 3 of" in rec.prompts_source
    assert "torch" in rec.library_versions and rec.created_by == "tester" and rec.seconds > 0
    tok = AutoTokenizer.from_pretrained(chat_models["base"])
    base = load_model(chat_models["base"])
    passages = load_corpus(DEFAULT_CORPUS)
    base_ppl = ppl(base, tok, passages)
    texts = {}
    for p in rec.points:
        eta = p.etas["drift"]
        model = merged(chat_reg, chat_models["base"], [("drift", eta)])
        answers = [a.text for a in generate_answers(model, tok, prompts, Decoding(MAX_NEW))]
        assert [s["answer"] for s in p.samples] == answers
        assert [s["prompt"] for s in p.samples] == prompts
        assert p.metrics["answer_length"] == pytest.approx(sum(map(answer_words, answers)) / 3, abs=1e-12)
        assert p.metrics["mattr"] == pytest.approx(sum(map(mattr, answers)) / 3, abs=1e-12)
        drift = 100 * (ppl(model, tok, passages) / base_ppl - 1)
        # transformers' float32 loss vs the registry's float64 log-softmax: ~1e-7 of the ratio
        assert p.metrics["ppl_drift"] == pytest.approx(drift, abs=1e-4)
        texts[eta] = answers
    assert rec.point({"drift": 0.0}).metrics["ppl_drift"] == pytest.approx(0.0, abs=1e-9)
    assert texts[1.0] != texts[0.0]  # the vector moves the answers
    assert abs(rec.point({"drift": 1.0}).metrics["ppl_drift"]) > 0.01  # and the perplexity
    assert rec.subject_metrics() == rec.point({"drift": 1.0}).metrics


def test_same_seed_same_record_numbers(chat_reg):
    a = chat_reg.record_sweep("drift", etas=[0.0, 1.0], prompts=2, samples=1, seed=3)
    b = chat_reg.record_sweep("drift", etas=[0.0, 1.0], prompts=2, samples=1, seed=3)
    assert a.id != b.id and a.points == b.points and a.prompts_digest == b.prompts_digest
    assert [e.id for e in chat_reg.evaluations("drift")] == [b.id, a.id]


def test_two_term_grids_have_every_point(chat_reg):
    rec = chat_reg.record_sweep("c", vary=["drift", "other"], etas=[-1.0, 0.0, 1.0], prompts=1, samples=1)
    assert rec.subject_kind == "recipe" and rec.subject_digest == chat_reg.recipe("c").content_digest
    assert rec.grid == {"drift": [-1.0, 0.0, 1.0], "other": [-1.0, 0.0, 1.0]}
    assert sorted((p.etas["drift"], p.etas["other"]) for p in rec.points) == [
        (a, b) for a in (-1.0, 0.0, 1.0) for b in (-1.0, 0.0, 1.0)
    ]
    assert rec.details["subject_point"] == {"drift": 1.0, "other": 0.5}
    assert rec.subject_metrics() is None  # 0.5 is not on the grid
    assert len({tuple(s["prompt"] for s in p.samples) for p in rec.points}) == 1
    # a vector with a second --vary: θbase + η₁·φ₁ + η₂·φ₂, the subject is the vector
    vec = chat_reg.record_sweep("drift", vary=["other"], etas=[0.0, 1.0], prompts=1, samples=0)
    assert vec.subject_kind == "vector" and list(vec.grid) == ["drift", "other"] and len(vec.points) == 4
    assert vec.subject_metrics() == vec.point({"drift": 1.0, "other": 0.0}).metrics
    assert all(p.samples == [] for p in vec.points)


def test_cli_records_lists_and_shows(chat_reg, cli):
    code, out, err = cli(
        "--json", "sweep", "drift", "--record", "--etas", "0,1", "--prompts", "1", "--samples", "1"
    )
    assert code == 0, err
    doc = json.loads(out)
    rec_id = doc["evaluation"]["id"]
    assert doc["varied"] == ["drift"] and len(doc["rows"]) == 2 and doc["files"] == {}
    assert any('"point 2/2' in line or "point 2/2" in line for line in err.splitlines())  # progress
    code, out, err = cli("--json", "evaluation", "list", "drift@v1")
    assert code == 0, err
    [listed] = json.loads(out)
    assert listed["id"] == rec_id and listed["digest"] == doc["evaluation"]["digest"]
    code, out, _ = cli("evaluation", "show", str(rec_id))
    assert code == 0 and f"evaluation {rec_id}: vector drift@v1" in out and "answers at η[drift]=+1" in out
    code, out, _ = cli("--json", "evaluation", "show", "drift")
    assert code == 0 and json.loads(out)["id"] == rec_id
    code, out, err = cli("sweep", "drift", "--record", "--vary", "nothere", "--prompts", "1")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "nothere" in err
    code, out, err = cli("evaluation", "show", "other")
    assert code != 0 and "sweep other --record" in err
    assert [e.id for e in chat_reg.evaluations()] == [rec_id]  # the refused sweep wrote nothing
