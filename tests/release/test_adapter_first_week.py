"""Adapters a team can trust and load the standard way (issue 34, items 17 and 18).

A lossy adapter warns above a relative-error threshold and `--max-error` refuses it with
nothing written; `adapter_config.json` names a base peft can open offline (this host's
folder for a local base), so `AutoPeftModelForCausalLM.from_pretrained(adapter)` works with
HF_HUB_OFFLINE=1; the card states the factors' real dtype and no raw JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from registry.testing.factors import random_factors
from tests.release.test_adapter import PROMPTS, logits


def test_lossy_adapter_warns_and_max_error_refuses_with_nothing_written(sqlite_reg, models, tmp_path, cli):
    reg = sqlite_reg
    reg.import_vector("dense", "tiny", models["plus"])  # every tensor nudged: far from rank 1
    reg.add_recipe({"name": "d", "base": "tiny", "terms": [{"vector": "dense", "weight": 1.0}]})
    code, out, err = cli("--json", "materialize", "d", "--out", tmp_path / "a", "--as-adapter", "--rank", "1")
    assert code == 0, err
    error = json.loads(out)["adapter"]["relative_error"]
    assert error > 0.1
    [warning] = [json.loads(line) for line in err.splitlines() if '"warning"' in line]
    assert warning["message"].startswith(
        f"the adapter is far from the recipe: relative error {error:.4g} > 0.1"
    )
    assert "pass --max-error" in warning["message"]

    before = sorted(p.name for p in tmp_path.iterdir())
    mats = len(reg.materializations())
    code, out, err = cli(
        "materialize", "d", "--out", tmp_path / "b", "--as-adapter", "--rank", "1", "--max-error", "0.05"
    )
    assert code == 1 and err.strip() == (
        f"Error: adapter of d@v1 refused: relative error {error:.4g} at SVD rank 1 exceeds --max-error 0.05 "
        "(raise --rank, or materialize the full model); nothing written"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no folder, no scratch left behind
    assert len(reg.materializations()) == mats
    code, out, err = cli(
        "materialize", "d", "--out", tmp_path / "c", "--as-adapter", "--rank", "1", "--max-error", "0.99"
    )
    assert code == 0 and "warning" not in err and (tmp_path / "c" / "adapter_config.json").is_file()
    code, _, err = cli("materialize", "d", "--out", tmp_path / "e", "--max-error", "0.5")
    assert code == 2 and "--max-error applies only with --as-adapter" in err


def test_adapter_opens_with_auto_peft_offline_and_its_card_says_float32(sqlite_reg, models, tmp_path, cli):
    reg = sqlite_reg
    reg.import_low_rank("a", "tiny", random_factors(models["base"], 4, seed=1))
    reg.add_recipe({"name": "lr", "base": "tiny", "terms": [{"vector": "a", "weight": 0.7}]})
    assert reg.recipe("lr").dtype == "bfloat16"  # the base's dtype; the adapter's factors are float32
    ad = tmp_path / "adapter"
    code, _, err = cli("materialize", "lr", "--out", ad, "--as-adapter")
    assert code == 0, err
    config = json.loads((ad / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(models["base"].resolve())

    script = (
        "import json, sys, torch\n"
        "from peft import AutoPeftModelForCausalLM\n"
        "from transformers import AutoTokenizer\n"
        "m = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()\n"
        "tok = AutoTokenizer.from_pretrained(m.peft_config['default'].base_model_name_or_path)\n"
        f"ids = tok({PROMPTS!r}, return_tensors='pt', padding=True)\n"
        "with torch.no_grad():\n"
        "    print(json.dumps(m(**ids).logits.double().tolist()))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(ad)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    got = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    want = logits(models["base"], ad)  # PeftModel over the base folder, in this process
    assert np.abs(got - want).max() < 1e-5

    card = (ad / "README.md").read_text()
    body = card.split("---", 2)[2]
    assert "Adapter tensors (LoRA factors): `float32`" in body and "bfloat16" not in body
    section = body[body.index("## adapter") :]
    assert not set(section) & set('{}[]"'), section
    assert "- relative error: 0\n" in section and "- exact: yes" in section and "- omitted: none" in section
    lock = json.loads((ad / "registry-lock.json").read_text())
    assert lock["notes"]["adapter"]["dtype"] == "float32"
    assert reg.verify_lock(ad / "registry-lock.json") == []


@pytest.mark.parametrize("source, hub", [("org/tiny-model", "org/tiny-model"), (None, None)])
def test_adapter_base_is_the_hub_id_when_there_is_one(source, hub, sqlite_reg, models, tmp_path, monkeypatch):
    from registry.release import adapter

    reg = sqlite_reg
    reg.import_low_rank("a", "tiny", random_factors(models["base"], 2, seed=3))
    reg.add_recipe({"name": "lr", "base": "tiny", "terms": [{"vector": "a", "weight": 1.0}]})
    monkeypatch.setattr(adapter, "hub_id", lambda b: source)
    reg.materialize_adapter("lr", tmp_path / "ad")
    named = json.loads((tmp_path / "ad" / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert named == (hub or str(models["base"].resolve()))
