"""Training for real models, on tiny ones: defaults, chat format, float32 φ, progress, GPU paths."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from registry.errors import TrainingFailed
from registry.plugins.spec import PreferencePair
from registry.training.options import TrainingOptions

# a ChatML-like template over tokens the tiny tokenizer has, like a real chat model's
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)
# aggressive, so that a few steps move a tiny random model measurably
FAST = dict(steps=6, learning_rate=1e-3, warmup_ratio=0.0)


def build_tiny_chat_model(folder: Path) -> Path:
    """A tiny Llama like SmolLM2: tied embeddings, bf16, and a chat template."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from registry.testing.tiny_model import build_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
    )
    torch.manual_seed(7)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=3)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def chat_base(tmp_path_factory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("chat") / "base")


@pytest.fixture
def chat_reg(home, chat_base):
    from registry import Registry

    r = Registry.init(home)
    r.add_base("chat", str(chat_base))
    yield r
    r.close()


def _verbose():
    from registry.plugins.loader import load

    # the hand-written verbose pairs (detailed over terse): fixed text for format and precision tests
    data = {
        "data": str(Path(__file__).parent.parent / "data" / "verbose_pairs.jsonl"),
        "heldout_fraction": 0.2,
    }
    p = load("pairs")
    return p.pairs(**data), p.heldout(**data)


# -- defaults ---------------------------------------------------------------------------------


def test_defaults_are_sized_for_pretrained_models():
    d = TrainingOptions()
    # measured on SmolLM2-135M-Instruct (docs/training.md): lr 1e-6 for 3 epochs left answers unchanged
    # at every η; β 0.1, lr 1e-5 with warm-up, two whole epochs moved them
    assert d.beta == 0.1 and 5e-6 <= d.learning_rate <= 2e-5 and 0 < d.warmup_ratio < 0.5
    assert d.steps is None and 1 <= d.epochs <= 3
    assert d.data_format == "auto" and d.precision == "auto"
    assert d.max_length >= 512  # a prompt and a several-paragraph answer
    with pytest.raises(TrainingFailed, match="invalid training option"):
        TrainingOptions(steps=None, epochs=None)
    with pytest.raises(TrainingFailed, match="data_format"):
        TrainingOptions(data_format="markdown")
    with pytest.raises(TrainingFailed, match="warmup_ratio"):
        TrainingOptions(warmup_ratio=1.0)


def test_options_resolve_per_base_and_describe_themselves(models, chat_base, monkeypatch):
    plain = TrainingOptions().resolved(models["base"])
    assert (plain.data_format, plain.precision) == ("plain", "fp32")  # this machine has no GPU
    chat = TrainingOptions().resolved(chat_base)
    assert chat.data_format == "chat" and chat.resolved(chat_base) == chat
    assert TrainingOptions(data_format="plain").resolved(chat_base).data_format == "plain"
    with pytest.raises(TrainingFailed, match="has no chat template"):
        TrainingOptions(data_format="chat").resolved(models["base"])
    line = TrainingOptions(steps=7, learning_rate=2e-6).resolved(chat_base).describe()
    assert line == (
        "training: chat format, fp32, 7 steps, lr 2e-06, warm-up 10%, β 0.1, batch 4, "
        "max length 512, full fine-tune"
    )
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert TrainingOptions().resolved(chat_base).precision == "bf16"
    assert "bf16 mixed precision" in TrainingOptions().resolved(chat_base).describe()
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert TrainingOptions().resolved(chat_base).precision == "fp16"
    assert TrainingOptions(precision="fp32").resolved(chat_base).precision == "fp32"


def test_cli_prints_options_and_records_resolved_ones(sqlite_reg, cli):
    code, out, err = cli(
        "--json", "add-preference", "verbose", "--base", "tiny", "--steps", "2", "--log-every", "1"
    )
    assert code == 0, err
    notes = [json.loads(line) for line in err.splitlines()]  # under --json, stderr is JSON lines only
    summary = [
        n["message"] for n in notes if n["event"] == "message" and n["message"].startswith("training: ")
    ]
    assert summary == [
        "training: plain format, fp32, 2 steps, lr 1e-05, warm-up 10%, β 0.1, batch 4, max length 512, full fine-tune"
    ]
    params = json.loads(out)["lineage"]["params"]
    assert (
        params["data_format"] == "plain" and params["precision"] == "fp32" and params["learning_rate"] == 1e-5
    )
    # the recorded options replay as they are
    params.pop("plugin_options"), params.pop("lossless")
    assert TrainingOptions.from_params(params).resolved(
        sqlite_reg.base("tiny").path
    ) == TrainingOptions.from_params(params)


# -- chat format ------------------------------------------------------------------------------


def test_chat_rows_are_conversations_and_plain_rows_are_text():
    pairs = [PreferencePair("Why?", " Because of this and that.", " No.")]
    from registry.training.dpo import preference_rows

    chat = preference_rows(pairs, "chat")
    assert chat == {
        "prompt": [[{"role": "user", "content": "Why?"}]],
        "chosen": [[{"role": "assistant", "content": "Because of this and that."}]],
        "rejected": [[{"role": "assistant", "content": "No."}]],
    }
    assert preference_rows(pairs, "plain") == {
        "prompt": ["Why?"],
        "chosen": [" Because of this and that."],
        "rejected": [" No."],
    }


def test_chat_base_trains_in_chat_format_and_moves_chat_margin(chat_reg, chat_base):
    from transformers import AutoTokenizer

    from registry.evaluation.scoring import dpo_margin, load_model

    v = chat_reg.add_preference("verbose", "chat", options=TrainingOptions(**FAST).resolved(chat_base))
    assert v.run.params["data_format"] == "chat"
    # the tied lm_head is saved once, as in the base: θ± have exactly the base's tensors
    from registry.storage.tensor_io import SafetensorsFolder

    assert sorted(t.name for t in v.tensors) == SafetensorsFolder(chat_base).names()
    assert "lm_head.weight" not in SafetensorsFolder(chat_base).names()
    _, held = _verbose()
    tok = AutoTokenizer.from_pretrained(chat_base)
    base_model = load_model(chat_base)
    margin = {
        eta: dpo_margin(
            load_model(chat_base, chat_reg.merged_state("chat", [("verbose", eta)])),
            base_model,
            tok,
            held,
            chat=True,
        )
        for eta in (-1.0, 1.0)
    }
    assert margin[1.0] > 1.0 and margin[-1.0] < -1.0


def test_training_data_reaches_trl_through_the_chat_template(chat_base, tmp_path, monkeypatch):
    """What trl tokenizes for a chat base is the template's rendering, with the assistant turn."""
    import trl

    from registry.training.dpo import train

    seen = {}
    real = trl.DPOTrainer

    class Spy(real):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            seen["row"] = self.train_dataset[0]
            seen["tok"] = k["processing_class"]

    monkeypatch.setattr(trl, "DPOTrainer", Spy)
    pairs, _ = _verbose()
    train(chat_base, pairs[:4], TrainingOptions(steps=1, learning_rate=1e-3), 0, tmp_path / "plus")
    tok, row = seen["tok"], seen["row"]
    assert tok.decode(row["prompt_ids"]).endswith(f"<s>user\n{pairs[0].prompt}</s>\n<s>assistant\n")
    assert tok.decode(row["chosen_ids"]) == pairs[0].chosen.strip() + "</s>\n"


# -- φ from float32 weights -------------------------------------------------------------------


def _read(folder: Path) -> dict[str, np.ndarray]:
    from registry.storage.tensor_io import FLOATS, SafetensorsFolder, to_f32

    w = SafetensorsFolder(folder)
    return {n: to_f32(w.read(n), w.spec(n).tag) for n in w.names() if w.spec(n).tag in FLOATS}


def test_phi_from_float32_weights_keeps_small_updates(models, tmp_path):
    """At a real-model learning rate, bf16 θ± lose most of φ; the float32 θ± keep all of it."""
    from registry.storage.tensor_io import SafetensorsFolder
    from registry.training.dpo import train

    pairs, _ = _verbose()
    opts = TrainingOptions(steps=3, learning_rate=1e-6, warmup_ratio=0.0)
    plus = train(models["base"], pairs, opts, 0, tmp_path / "plus", save_16bit=True)
    minus = train(models["base"], [p.switched() for p in pairs], opts, 0, tmp_path / "minus", save_16bit=True)
    assert plus.folder_16bit == tmp_path / "plus-bfloat16" and plus.lineage()["phi_from"] == "float32"
    assert {SafetensorsFolder(plus.folder).spec(n).tag for n in SafetensorsFolder(plus.folder).names()} == {
        "F32"
    }
    w16 = SafetensorsFolder(plus.folder_16bit)
    assert {w16.spec(n).tag for n in w16.names()} == {"BF16"}
    p32, m32, p16, m16 = (
        _read(f) for f in (plus.folder, minus.folder, plus.folder_16bit, minus.folder_16bit)
    )
    # embedding rows of tokens absent from the pairs get no gradient: leave them out
    names = [n for n in sorted(p32) if "embed_tokens" not in n]
    phi32 = np.concatenate([(p32[n] - m32[n]).ravel() for n in names])
    phi16 = np.concatenate([(p16[n] - m16[n]).ravel() for n in names])
    assert (phi32 == 0).mean() < 0.01  # Adam moves nearly every weight
    assert (phi16 == 0).mean() > 0.5  # most of those moves are below half a bf16 ulp
    # the bf16 θ± are exactly the float32 ones rounded: nothing else differs
    import torch

    for n in p32:
        assert np.array_equal(torch.from_numpy(p32[n]).to(torch.bfloat16).float().numpy(), p16[n])


def test_verb_stores_phi_of_float32_weights(sqlite_reg, models):
    """add_preference stores θ+ − θ− of the float32 master weights, small updates included."""
    v = sqlite_reg.add_preference(
        "verbose", "tiny", options=TrainingOptions(steps=3, learning_rate=1e-6, warmup_ratio=0.0)
    )
    assert {t.source_dtype for t in v.tensors} == {"float32"}
    import zarr

    group = zarr.open_group(store=str(sqlite_reg.store.path / "data" / v.store_key), mode="r")
    phi = np.concatenate([np.asarray(a[:]).ravel() for n, a in sorted(group.arrays()) if "embed" not in n])
    assert (phi == 0).mean() < 0.01 and np.abs(phi).max() < 1e-4


def test_lora_merge_matches_peft(models):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from registry.training.dpo import merge_lora

    model = AutoModelForCausalLM.from_pretrained(models["base"], dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    state = {k: v.clone() for k, v in peft_model.state_dict().items()}
    merged = merge_lora(state, scaling=2.0)
    expected = peft_model.merge_and_unload().state_dict()
    assert set(merged) == set(expected)
    for k in expected:
        torch.testing.assert_close(merged[k], expected[k], rtol=0, atol=1e-7)
    base = "base_model.model.model.layers.0.mlp.up_proj.base_layer.weight"
    assert not torch.equal(merged["model.layers.0.mlp.up_proj.weight"], state[base])


def test_tied_duplicates(chat_base, models):
    from transformers import AutoModelForCausalLM

    from registry.training.dpo import tied_duplicates

    assert tied_duplicates(AutoModelForCausalLM.from_pretrained(chat_base)) == {"lm_head.weight"}
    assert tied_duplicates(AutoModelForCausalLM.from_pretrained(models["base"])) == set()


# -- progress ---------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _train_reporting(models, tmp_path, **report):
    from registry.training.dpo import train
    from registry.training.progress import reporting

    pairs, _ = _verbose()
    with reporting(**report):
        return train(
            models["base"], pairs, TrainingOptions(steps=4, learning_rate=1e-3), 0, tmp_path / "plus"
        )


def test_progress_lines_off_a_terminal(models, tmp_path, capfd):
    out = io.StringIO()
    r = _train_reporting(models, tmp_path, every=2, stream=out)
    lines = out.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["plus step 1/4", "plus step 2/4", "plus step 4/4"]
    assert all(" loss " in line and " margin " in line for line in lines)
    assert r.steps == 4 and set(r.final) == {"loss", "margin", "accuracy"}
    # third-party bars stay out of logs
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "it/s]" not in err and "Tokenizing" not in err


def test_progress_json_lines(models, tmp_path):
    out = io.StringIO()
    _train_reporting(models, tmp_path, json=True, every=1, stream=out)
    recs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3, 4]
    assert all(r["event"] == "train_step" and r["total_steps"] == 4 for r in recs)
    assert all(isinstance(r["loss"], float) and isinstance(r["margin"], float) for r in recs)
    assert recs[-1]["margin"] > recs[0]["margin"]  # the policy learns the preference


def test_progress_bar_on_a_terminal(models, tmp_path):
    out = FakeTerminal()
    _train_reporting(models, tmp_path, every=1, stream=out)
    text = out.getvalue()
    assert "plus" in text and "4/4" in text and "loss=" in text and "margin=" in text
    assert "plus step 1/4" not in text  # a bar, not log lines


def test_cli_json_progress_goes_to_stderr(sqlite_reg, cli):
    code, out, err = cli(
        "--json", "add-preference", "verbose", "--base", "tiny", "--steps", "3", "--log-every", "2"
    )
    assert code == 0, err
    assert json.loads(out)["ref"] == "verbose@v1"  # stdout stays one JSON document
    recs = [json.loads(line) for line in err.splitlines()]  # no plain-text line among them
    steps = [(r["label"], r["step"]) for r in recs if r["event"] == "train_step"]
    assert steps == [(half, n) for half in ("plus", "minus") for n in (1, 2, 3)]


def test_verb_records_resolved_options_and_how_phi_was_made(sqlite_reg):
    v = sqlite_reg.add_preference("verbose", "tiny", options=TrainingOptions(steps=2, learning_rate=1e-3))
    params = v.run.params
    assert params["data_format"] == "plain" and params["precision"] == "fp32"
    assert params["trained"]["phi_from"] == "float32" and params["trained"]["optimizer_steps"] == 2
