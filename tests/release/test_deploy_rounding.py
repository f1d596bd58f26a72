"""materialize warns when η·φ rounds away in the output dtype, and only then.

The counts are checked against a direct torch computation: from the base and the output
re-read from disk, and the update Σ η·φ computed from the θ+ the test wrote.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from registry.release.deploy_rounding import (
    THRESHOLD,
    BlockCounts,
    RoundingTally,
    count_block,
    count_merge,
    count_torch,
    rounding_warning,
)

TORCH = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}
BITS = {torch.bfloat16: torch.int16, torch.float16: torch.int16, torch.float32: torch.int32}
TINY, LARGE = 1e-4, 0.05  # relative to |w|: far below half a bf16 ulp (≥ 2⁻⁹), far above a whole one (≤ 2⁻⁷)


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(BITS[t.dtype])


def as_raw(t: torch.Tensor, tag: str) -> np.ndarray:
    """A tensor as the store holds it (bf16 as uint16 bits)."""
    return t.view(torch.int16).numpy().view(np.uint16) if tag == "BF16" else t.numpy()


# -- the accumulator against a direct computation ------------------------------------------
@pytest.mark.parametrize(
    ("base_tag", "out_tag"),
    [("BF16", "BF16"), ("F32", "BF16"), ("BF16", "F16"), ("F16", "F16"), ("BF16", "F32"), ("F32", "F32")],
)
def test_block_counts_match_a_direct_computation(base_tag, out_tag):
    g = torch.Generator().manual_seed(0)
    n = 20_000
    base = (torch.randn(n, generator=g) * 0.05 + 0.01).to(TORCH[base_tag])
    b32 = base.float()
    # a mix: no update, updates far below half an ulp of the output dtype (either sign, so
    # some round up onto the base), updates of several ulps
    kind = torch.randint(0, 3, (n,), generator=g)
    scale = torch.tensor([0.0, 1e-4, 5e-2])[kind]
    update = b32.abs() * scale * torch.randn(n, generator=g)
    merged = b32 + update
    out = merged.to(TORCH[out_tag])

    updated = merged != b32  # no ±0 here: float and bit comparisons agree
    kept = updated & (bits(out) == bits(base.to(TORCH[out_tag])))
    want = BlockCounts(n, int(updated.sum()), int(kept.sum()))
    got = count_block(as_raw(base, base_tag), base_tag, merged.numpy(), as_raw(out, out_tag), out_tag)
    assert got == want
    assert count_merge(as_raw(base, base_tag), base_tag, merged.numpy(), out_tag) == want
    assert (
        count_torch(base, merged, {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}[out_tag]) == want
    )
    assert 0 < want.updated < n
    if out_tag == "F32":
        assert want.kept == 0
    else:
        assert 0 < want.kept < want.updated  # the mix reaches every branch


def test_bf16_counts_see_a_sum_that_rounds_back_onto_the_base():
    """Just below a bf16 value, by less than half an ulp: the float32 merge changed it, the
    output is the base's value again (the fast path's low-half test, not a high-half one)."""
    base = torch.tensor([1.0, 1.0, 2.0, -3.0], dtype=torch.bfloat16)
    merged = torch.tensor([1.0 - 2**-10, 1.0, 2.0 + 2**-8, -3.0 + 2**-3], dtype=torch.float32)
    out = merged.to(torch.bfloat16)
    got = count_block(as_raw(base, "BF16"), "BF16", merged.numpy(), as_raw(out, "BF16"), "BF16")
    # updated: 1.0-2⁻¹⁰ (rounds back to 1.0), 2+2⁻⁸ (ties to even: 2.0), -3+2⁻³ (a new value)
    assert got == BlockCounts(4, 3, 2)


def test_tally_sums_blocks_from_threads_per_tensor():
    t = RoundingTally("bfloat16")
    blocks = [("a", BlockCounts(10, 4, 3)), ("b", BlockCounts(6, 6, 0)), ("a", BlockCounts(10, 2, 2))]
    threads = [threading.Thread(target=lambda nc=nc: [t.add(*nc) for _ in range(100)]) for nc in blocks]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert t.per_tensor() == {"a": BlockCounts(2000, 600, 500), "b": BlockCounts(600, 600, 0)}
    assert t.totals() == BlockCounts(2600, 1200, 500)
    assert t.rounded_away_fraction == pytest.approx(500 / 1200)
    assert t.changed_fraction == pytest.approx(700 / 2600)
    assert t.warning() is None
    empty = RoundingTally("bfloat16")  # η = 0: nothing changes, nothing rounds away
    assert (empty.rounded_away_fraction, empty.changed_fraction, empty.warning()) == (0.0, 0.0, None)


def test_warning_only_above_half():
    assert rounding_warning(THRESHOLD, "bfloat16") is None
    assert rounding_warning(None, "bfloat16") is None
    w = rounding_warning(0.875, "bfloat16")
    assert w == (
        "η·φ rounds away in bfloat16 for 87.5% of the weights it changes (the output keeps the base's "
        "value there): raise |η|, train a stronger vector (more epochs or a higher learning rate), or "
        "set dtype: float32 in the recipe"
    )
    assert "\n" not in w


# -- materialize on the tiny bf16 model ------------------------------------------------------
def f32_positive(base: Path, out: Path, large_share: float, seed: int = 0) -> Path:
    """θ+ = θbase + φ in float32: φ tiny (relative TINY) except a random `large_share` of
    each tensor's entries (relative LARGE)."""
    out.mkdir(parents=True)
    for f in base.iterdir():
        if f.is_file() and not f.name.endswith(".safetensors"):
            shutil.copyfile(f, out / f.name)
    g = torch.Generator().manual_seed(seed)
    pos = {}
    for name, t in sorted(load_file(base / "model.safetensors").items()):
        w = t.float()
        big = torch.rand(w.shape, generator=g) < large_share
        sign = torch.where(torch.rand(w.shape, generator=g) < 0.5, -1.0, 1.0)
        pos[name] = w + sign * w.abs().clamp_min(1e-3) * torch.where(big, LARGE, TINY)
    save_file(pos, out / "model.safetensors", metadata={"format": "pt"})
    return out


def direct_fraction(base: Path, pos: Path, out: Path, eta: float) -> tuple[float, float]:
    """(rounded away, changed) from the files on disk: update = η·(θ+ − θbase) in float32."""
    b, p, o = (load_file(d / "model.safetensors") for d in (base, pos, out))
    updated = kept = changed = entries = 0
    for name, bt in b.items():
        update = torch.tensor(eta, dtype=torch.float32) * (p[name].float() - bt.float())
        nonzero = update != 0
        same = bits(o[name]) == bits(bt.to(o[name].dtype))
        updated += int(nonzero.sum())
        kept += int((nonzero & same).sum())
        changed += int((~same).sum())
        entries += bt.numel()
    return kept / updated, changed / entries


def recipe(vector: str, eta: float, **extra) -> dict:
    return {
        "name": f"r-{vector}",
        "base": "tiny",
        "method": "linear",
        "terms": [{"vector": vector, "weight": eta}],
        **extra,
    }


@pytest.fixture
def weak(sqlite_reg, models, tmp_path):
    """A vector whose φ is mostly far below half a bf16 ulp of the base: 80 % of it rounds away."""
    pos = f32_positive(models["base"], tmp_path / "weak", large_share=0.2)
    sqlite_reg.import_vector("weak", "tiny", pos)
    return pos


def test_a_weak_vector_warns_with_the_fraction_measured_on_disk(sqlite_reg, models, weak, tmp_path):
    sqlite_reg.add_recipe(recipe("weak", 1.0))
    m = sqlite_reg.materialize("r-weak", tmp_path / "out")
    want, changed = direct_fraction(models["base"], weak, tmp_path / "out", 1.0)
    assert 0.7 < want < 0.9  # the mix above: about 80 % tiny
    assert m.rounded_away_fraction == pytest.approx(want, abs=1e-12)
    assert m.changed_fraction == pytest.approx(changed, abs=1e-12)
    assert m.rounding_warning == rounding_warning(want, "bfloat16")
    assert f"{want:.1%} of the weights it changes" in m.rounding_warning


def test_cli_warns_in_one_line_and_keeps_json_on_stdout(sqlite_reg, models, weak, tmp_path, cli):
    sqlite_reg.add_recipe(recipe("weak", 0.9))
    code, out, err = cli("materialize", "r-weak", "--out", tmp_path / "a")
    assert code == 0, err
    want, changed = direct_fraction(models["base"], weak, tmp_path / "a", 0.9)
    lines = [line for line in err.splitlines() if "rounds away" in line]
    assert lines == [f"warning: {rounding_warning(want, 'bfloat16')}"]

    code, out, err = cli("--json", "materialize", "r-weak", "--out", tmp_path / "b", "--no-reuse")
    assert code == 0, err
    view = json.loads(out)
    assert view["rounded_away_fraction"] == pytest.approx(want, abs=1e-12)
    assert view["changed_fraction"] == pytest.approx(changed, abs=1e-12)
    events = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert [e for e in events if e.get("event") == "warning"] == [
        {"event": "warning", "message": rounding_warning(want, "bfloat16")}
    ]


def test_a_vector_that_changes_every_weight_is_silent(sqlite_reg, models, tmp_path, cli):
    pos = f32_positive(models["base"], tmp_path / "strong", large_share=1.0)
    sqlite_reg.import_vector("strong", "tiny", pos)
    sqlite_reg.add_recipe(recipe("strong", 1.0))
    code, out, err = cli("--json", "materialize", "r-strong", "--out", tmp_path / "out")
    assert code == 0, err
    rounded, changed = direct_fraction(models["base"], pos, tmp_path / "out", 1.0)
    assert (rounded, changed) == (0.0, 1.0)  # every weight of the output differs from the base
    view = json.loads(out)
    assert (view["rounded_away_fraction"], view["changed_fraction"]) == (0.0, 1.0)
    assert not [line for line in err.splitlines() if '"warning"' in line]


def test_a_float32_recipe_keeps_the_weak_update_and_is_silent(sqlite_reg, models, weak, tmp_path, cli):
    sqlite_reg.add_recipe(recipe("weak", 1.0, dtype="float32"))
    code, _, err = cli("materialize", "r-weak", "--out", tmp_path / "out")
    assert code == 0, err
    assert "rounds away" not in err
    rounded, changed = direct_fraction(models["base"], weak, tmp_path / "out", 1.0)
    assert (rounded, changed) == (0.0, 1.0)  # float32 keeps every change
    m = sqlite_reg.materialize("r-weak", tmp_path / "again", reuse=False)
    assert (m.rounded_away_fraction, m.rounding_warning) == (0.0, None)


def test_a_reused_output_is_not_measured(sqlite_reg, weak, tmp_path):
    sqlite_reg.add_recipe(recipe("weak", 1.0))
    first = sqlite_reg.materialize("r-weak", tmp_path / "a")
    again = sqlite_reg.materialize("r-weak", tmp_path / "b")
    assert first.rounding_warning is not None
    assert again.reused_from_id == first.id
    assert (again.rounded_away_fraction, again.changed_fraction, again.rounding_warning) == (None, None, None)


def test_other_methods_and_a_float32_base_are_measured(sqlite_reg, weak, tmp_path):
    """The float32 merge path (DARE) and a float32 base (the linear path keeps a copy of it)."""
    from registry.testing.tiny_model import build_tiny_llama

    sqlite_reg.add_recipe({**recipe("weak", 1.0), "name": "dare", "method": "dare",
                           "parameters": {"drop_rate": 0.5, "seed": 0}})  # fmt: skip
    m = sqlite_reg.materialize("dare", tmp_path / "dare")
    assert 0.7 < m.rounded_away_fraction < 0.9  # survivors ×2: tiny ones still far below half an ulp
    assert m.rounding_warning is not None

    base32 = build_tiny_llama(tmp_path / "base32", seed=0, dtype="float32")
    sqlite_reg.add_base("tiny32", str(base32))
    pos = f32_positive(base32, tmp_path / "weak32", large_share=0.2)
    sqlite_reg.import_vector("weak32", "tiny32", pos)
    sqlite_reg.add_recipe({**recipe("weak32", 1.0), "base": "tiny32", "dtype": "bfloat16"})
    m = sqlite_reg.materialize("r-weak32", tmp_path / "out32")
    want, changed = direct_fraction(base32, pos, tmp_path / "out32", 1.0)
    assert m.rounded_away_fraction == pytest.approx(want, abs=1e-12)
    assert m.changed_fraction == pytest.approx(changed, abs=1e-12)
    assert want > THRESHOLD and m.rounding_warning is not None
