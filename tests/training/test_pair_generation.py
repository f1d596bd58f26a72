"""Preferences from instructions, on a tiny chat model: the base writes the pairs, the run keeps them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from registry.errors import PluginError, RegistryError, TrainingFailed
from registry.plugins.spec import Contrast, PairGeneration
from registry.training.options import TrainingOptions

FAST = TrainingOptions(steps=2, batch_size=4, learning_rate=1e-3, warmup_ratio=0.0)
FEW = {"pairs": 6}  # plugin options: six training prompts keep each test a few seconds


@pytest.fixture(scope="module")
def chat_base(tmp_path_factory) -> Path:
    from registry.testing.tiny_model import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("chat") / "base", chat=True)


@pytest.fixture
def reg(home, chat_base):
    from registry import Registry

    r = Registry.init(home)
    r.add_base("chat", str(chat_base))
    yield r
    r.close()


def _verbose():
    from registry.plugins.loader import load

    return load("verbose")


def _generate(chat_base, digest="d", **options):
    from registry.training.pair_generation import generate_pairs

    return generate_pairs(chat_base, digest, _verbose(), {**FEW, **options})


def test_generation_is_deterministic_for_a_seed_and_differs_across_seeds(chat_base):
    a, b = _generate(chat_base), _generate(chat_base)
    assert [(r.chosen, r.rejected) for r in a.rows] == [(r.chosen, r.rejected) for r in b.rows]
    assert a.digest() == b.digest()
    c = _generate(chat_base, sample_seed=1)
    assert [r.chosen for r in c.rows] != [r.chosen for r in a.rows]
    # the prompts are the plugin's first six training prompts, each drew one of its contrasts
    assert [r.prompt for r in a.rows] == _verbose().prompts()[:6]
    assert all(0 <= r.contrast < len(_verbose().contrasts()) for r in a.rows)


def test_each_answer_is_what_the_base_says_under_its_instruction(chat_base):
    """Independent check: one answer regenerated alone (batch of one) under its drawn instruction."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from registry.training.generation import Decoding, generate_answers

    got = _generate(chat_base)
    settings, contrasts = got.settings, _verbose().contrasts()
    row = got.rows[3]
    tok = AutoTokenizer.from_pretrained(chat_base)
    model = AutoModelForCausalLM.from_pretrained(chat_base, dtype=torch.float32)
    alone = Decoding(
        max_new_tokens=settings.max_new_tokens_negative,
        temperature=settings.temperature,
        top_p=settings.top_p,
        batch_size=1,
        seed=settings.sample_seed,
    )
    [answer] = generate_answers(model, tok, [row.prompt], alone, system=contrasts[row.contrast].negative)
    assert answer.text == row.rejected
    # the system message reached the model through the chat template
    ids = tok.apply_chat_template(
        [
            {"role": "system", "content": contrasts[row.contrast].negative},
            {"role": "user", "content": row.prompt},
        ],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
    )["input_ids"]
    from registry.training.generation import prompt_ids

    assert prompt_ids(tok, row.prompt, contrasts[row.contrast].negative) == list(ids)


def test_pairs_are_stored_with_the_run_and_shown(reg, cli):
    v = reg.add_preference("verbose", "chat", seed=0, options=FAST, plugin_options=FEW)
    run = v.run
    gen = run.params["pair_generation"]
    shown = reg.run_pairs(run.id)
    assert shown["pairs_digest"] == gen["pairs_digest"] and len(shown["pairs"]) == 6
    kept = [p for p in shown["pairs"] if p["kept"]]
    assert run.dataset_size == len(kept) == gen["counts"]["kept"]
    # the dataset digest is the digest of the kept pairs, as DPO saw them
    from registry.plugins.spec import PreferencePair
    from registry.training.add_preference import dataset_digest

    assert run.dataset_digest == dataset_digest(
        [PreferencePair(p["prompt"], p["chosen"], p["rejected"]) for p in kept]
    )
    code, out, err = cli("--json", "run", "pairs", str(run.id))
    assert code == 0, err
    doc = json.loads(out)
    assert [p["chosen"] for p in doc["pairs"]] == [p["chosen"] for p in shown["pairs"]]
    code, out, _ = cli("run", "pairs", str(run.id), "--kept-only")
    assert code == 0 and f"{len(kept)} of 6 generated pairs kept" in out and out.count("[kept]") == len(kept)
    assert "dropped:" not in out.split("\n", 1)[1]


def test_an_edited_stored_pair_is_caught(reg):
    from sqlalchemy import update

    from registry.db.models import RunPair

    v = reg.add_preference("verbose", "chat", seed=0, options=FAST, plugin_options=FEW)
    with reg.Session.begin() as s:
        s.execute(
            update(RunPair).where(RunPair.run_id == v.run.id, RunPair.position == 0).values(chosen="forged")
        )
    with pytest.raises(RegistryError, match="stored pairs do not match the digest"):
        reg.run_pairs(v.run.id)


def test_the_filter_drops_and_counts_what_the_plugin_rejects(reg, monkeypatch):
    verbose = _verbose()
    # an independent rule: drop every pair whose chosen answer has an even number of characters
    monkeypatch.setattr(verbose, "contrast_held", lambda c, r: "even" if len(c) % 2 == 0 else None)
    v = reg.add_preference("verbose", "chat", seed=0, options=FAST, plugin_options={"pairs": 8})
    rows = reg.run_pairs(v.run.id)["pairs"]
    expect_dropped = [p["position"] for p in rows if len(p["chosen"]) % 2 == 0]
    assert [p["position"] for p in rows if not p["kept"]] == expect_dropped
    assert all(p["dropped_because"] == "even" for p in rows if not p["kept"])
    counts = v.run.params["pair_generation"]["counts"]
    assert counts == {
        "generated": 8,
        "kept": 8 - len(expect_dropped),
        "dropped": {"even": len(expect_dropped)} if expect_dropped else {},
    }


def test_empty_and_identical_answers_are_dropped_by_the_core():
    from registry.training.pair_generation import core_drop_reason

    assert core_drop_reason("same", " same ") == "identical answers"
    assert core_drop_reason("  ", "x") == "empty answer"
    assert core_drop_reason("long answer", "short") is None


def test_when_no_pair_keeps_the_contrast_the_run_fails_and_says_why(reg, monkeypatch):
    monkeypatch.setattr(_verbose(), "contrast_held", lambda c, r: "never")
    with pytest.raises(TrainingFailed, match="no generated pair kept the contrast"):
        reg.add_preference("verbose", "chat", seed=0, options=FAST, plugin_options=FEW)
    assert reg.vectors() == []


def test_bad_instructions_fail_before_any_work(reg, cli):
    code, _, err = cli(
        "add-preference", "prompted", "--base", "chat", "--positive", "Be brief.", "--negative", "Be brief."
    )
    assert code != 0 and "the positive and negative instructions are the same" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli(
        "add-preference",
        "prompted",
        "--base",
        "chat",
        "--positive",
        "x",
        "--negative",
        "y",
        "--prompts",
        "/nonexistent.txt",
    )
    assert code != 0 and "prompts file not found" in err


def test_prompted_defines_a_preference_in_two_sentences(reg, cli, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"Question number {i}?" for i in range(12)) + "\n")
    code, out, err = cli(
        "--json", "add-preference", "prompted", "--base", "chat", "--name", "eli5",
        "--positive", "Explain it to a five-year-old.", "--negative", "Answer as a professor.",
        "--prompts", str(prompts), "--pairs", "4", "--steps", "2", "--learning-rate", "1e-3",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["name"] == "eli5"
    v = reg.vector("eli5")
    gen = v.run.params["pair_generation"]
    assert gen["contrasts"] == [
        {"positive": "Explain it to a five-year-old.", "negative": "Answer as a professor."}
    ]
    # every sixth prompt is held out: the first four training prompts skip "Question number 5?"
    assert [p["prompt"] for p in reg.run_pairs(v.run.id)["pairs"]] == [
        f"Question number {i}?" for i in range(4)
    ]
    assert v.run.plugin == "prompted" and gen["counts"]["generated"] == 4


def test_shared_reference_logps_give_the_same_phi_as_separate_ones(chat_base, tmp_path):
    from safetensors.numpy import load_file

    from registry.training import dpo

    pairs = _generate(chat_base).kept
    options = FAST.resolved(chat_base)
    plus = dpo.train(chat_base, pairs, options, 0, tmp_path / "plus")
    switched = [p.switched() for p in pairs]
    shared = dpo.train(
        chat_base, switched, options, 0, tmp_path / "shared", reference=plus.reference.switched()
    )
    separate = dpo.train(chat_base, switched, options, 0, tmp_path / "separate")
    # the switched reference is exactly what θ−'s own precompute finds
    np.testing.assert_allclose(separate.reference.chosen, plus.reference.rejected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(separate.reference.rejected, plus.reference.chosen, rtol=1e-5, atol=1e-4)
    p = load_file(tmp_path / "plus" / "model.safetensors")
    a = load_file(tmp_path / "shared" / "model.safetensors")
    b = load_file(tmp_path / "separate" / "model.safetensors")
    for k in p:
        np.testing.assert_allclose(p[k] - a[k], p[k] - b[k], rtol=1e-4, atol=1e-6)
    assert shared.reference_seconds == 0.0 and separate.reference_seconds > 0


def test_a_work_folder_makes_a_stopped_run_resume_where_it_stopped(reg, tmp_path, monkeypatch):
    from registry.training import dpo

    work = tmp_path / "work"
    calls: list[str] = []
    stop = [True]  # the first θ− is interrupted, once
    real = dpo.train

    def counting(base, pairs, options, seed, out, *a, **kw):
        calls.append(Path(out).name)
        if Path(out).name == "minus" and stop and stop.pop():
            raise KeyboardInterrupt  # stopped during θ−
        return real(base, pairs, options, seed, out, *a, **kw)

    monkeypatch.setattr(dpo, "train", counting)
    with pytest.raises(KeyboardInterrupt):
        reg.add_preference("verbose", "chat", seed=0, options=FAST, plugin_options=FEW, work=work)
    assert (work / "pairs.json").is_file() and (work / "plus.done.json").is_file()
    logs: list[str] = []
    v = reg.add_preference(
        "verbose", "chat", seed=0, options=FAST, plugin_options=FEW, work=work, log=logs.append
    )
    assert calls == ["plus", "minus", "minus"]  # θ+ was not trained again
    assert any("reusing 6 generated pairs" in m for m in logs) and any("plus: reusing" in m for m in logs)
    # the same vector as a run from scratch
    fresh = reg.add_preference("verbose", "chat", name="fresh", seed=0, options=FAST, plugin_options=FEW)
    assert v.digest == fresh.digest
    # other inputs (another seed) do not reuse the trained halves
    calls.clear()
    reg.add_preference("verbose", "chat", name="s1", seed=1, options=FAST, plugin_options=FEW, work=work)
    assert calls == ["plus", "minus"]


def test_instructed_plugin_settings_are_recorded(reg):
    v = reg.add_preference("verbose", "chat", seed=0, options=FAST, plugin_options=FEW)
    gen = v.run.params["pair_generation"]
    assert gen["settings"] == {**PairGeneration().__dict__, "pairs": 6, "max_new_tokens_positive": 400}
    assert gen["contrasts"] == [c.__dict__ for c in _verbose().contrasts()]
    assert all(isinstance(c, Contrast) for c in _verbose().contrasts())
    assert v.run.params["phase_seconds"].keys() >= {"pairs", "plus", "minus", "reference"}


def test_a_prompts_file_without_prompts_is_one_line(tmp_path):
    from registry_plugins.instructed import read_prompts

    bad = tmp_path / "p.jsonl"
    bad.write_text('{"question": "x"}\n')
    with pytest.raises(PluginError, match=r"p\.jsonl:1: a JSON line needs a string `prompt` field"):
        read_prompts(bad)
