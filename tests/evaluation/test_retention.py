"""Retention gate: perplexity drift on a neutral corpus, refused above a threshold, recorded."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from registry.errors import RetentionRefused
from registry.evaluation.retention import DEFAULT_CORPUS, load_corpus, parse_drift


@pytest.fixture
def hs(sqlite_reg, models):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    terms = [{"vector": "helpful", "weight": -100.0}]
    sqlite_reg.add_recipe({"name": "hs", "base": "tiny", "dtype": "float32", "terms": terms})
    return sqlite_reg


def _ppl(folder, passages) -> float:
    """Independent: the mean token loss transformers computes itself, weighted by tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    total = count = 0.0
    with torch.no_grad():
        for p in passages:
            ids = torch.tensor([tok(p, add_special_tokens=False).input_ids])
            n = ids.shape[1] - 1
            total += float(model(ids, labels=ids).loss) * n
            count += n
    return math.exp(total / count)


def test_default_corpus_and_drift_against_transformers_loss(hs, models, tmp_path):
    passages = load_corpus(DEFAULT_CORPUS)
    assert 30 <= len(passages) <= 60 and all(20 < len(p) < 400 for p in passages)
    check = hs.retention("hs")
    hs.materialize("hs", tmp_path / "out")
    assert check.passages == len(passages) and check.corpus == "default"
    assert check.base_ppl == pytest.approx(_ppl(models["base"], passages), rel=1e-4)
    assert check.merged_ppl == pytest.approx(_ppl(tmp_path / "out", passages), rel=1e-4)
    assert check.drift == pytest.approx(check.merged_ppl / check.base_ppl - 1)
    assert check.drift > 0.005  # η = −100 of a random perturbation costs general ability


def test_gate_refuses_above_threshold_and_records_below(hs, cli, tmp_path):
    drift = hs.retention("hs").drift
    code, _, err = cli("materialize", "hs", "--out", tmp_path / "no", "--max-ppl-drift", f"{drift * 50}%")
    assert code == 1 and "recipe hs@v1: perplexity drift +" in err and "nothing written" in err
    assert "Loading weights" not in err  # transformers' bar stays out of logs
    assert not (tmp_path / "no").exists() and hs.materializations() == []
    with pytest.raises(RetentionRefused):
        hs.materialize("hs", tmp_path / "no", max_ppl_drift=drift / 2)
    hs.materialize("hs", tmp_path / "plain")  # ungated first: the gated one must not reuse it
    code, out, err = cli(
        "--json", "materialize", "hs", "--out", tmp_path / "ok", "--max-ppl-drift", f"{drift * 200}%"
    )
    assert code == 0, err
    assert "Loading weights" not in err and all(json.loads(x) for x in err.splitlines())
    note = json.loads(out)["retention"]
    assert note["drift"] == pytest.approx(drift) and note["max_drift"] == pytest.approx(drift * 2)
    lock = json.loads((tmp_path / "ok" / "registry-lock.json").read_text())
    assert lock["notes"]["retention"] == note
    card = yaml.safe_load((tmp_path / "ok" / "README.md").read_text().split("---")[1])
    assert card["preference_notes"]["retention"]["drift"] == pytest.approx(drift)
    assert "retention" not in json.loads((tmp_path / "plain" / "registry-lock.json").read_text()).get(
        "notes", {}
    )
    shown = json.loads(cli("--json", "recipe", "show", "hs")[1])["notes"]["retention"]
    assert shown["drift"] == pytest.approx(drift) and shown["passed"] is True
    code, _, err = cli("materialize", "hs", "--out", tmp_path / "x", "--max-ppl-drift", "lots")
    assert code == 1 and "invalid drift 'lots'" in err


def test_corpus_is_replaceable_per_registry(hs, home):
    from registry import Registry

    (home / "corpus.txt").write_text("One short passage about the weather.\n\nAnother about the sea.\n")
    text = (
        (home / "registry.toml")
        .read_text()
        .replace("\nstore = ", '\nretention_corpus = "corpus.txt"\nstore = ')
    )
    (home / "registry.toml").write_text(text)
    reg = Registry.open(home)
    check = reg.retention("hs")
    assert check.passages == 2 and check.corpus == str(home / "corpus.txt")
    assert parse_drift("5%") == pytest.approx(0.05) and parse_drift("2.5") == pytest.approx(0.025)
