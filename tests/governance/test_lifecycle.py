"""Lifecycle, audit, pipelines (require-approved, lock verification, reuse), gc, sweeps."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import yaml

from registry.errors import InvalidTransition, NotApproved, NotFound


def write_recipe(tmp_path, **extra):
    p = tmp_path / "recipe.yaml"
    data = {"name": "mix", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}], **extra}
    p.write_text(yaml.safe_dump(data))
    return p


def test_governance_story(loaded, cli, tmp_path, monkeypatch):
    recipe = write_recipe(tmp_path)
    assert cli("recipe", "add", recipe)[0] == 0
    code, _, err = cli("materialize", "mix", "--out", tmp_path / "m", "--require-approved")
    assert code != 0 and err.strip() == (
        "Error: recipe mix@v1 is draft, not approved (approve it with `registry approve mix@v1 --reason TEXT`)"
    )
    assert not (tmp_path / "m").exists()
    code, _, err = cli("recipe", "alias", "mix@v1", "prod")
    assert code != 0 and "an alias may point only at an approved version" in err
    code, _, err = cli("approve", "mix@v1", "--reason", "evals passed", "--actor", "alice")
    assert code != 0 and "uses vectors that are not approved: helpful@v1 (draft)" in err
    assert cli("approve", "helpful", "--vector", "--reason", "reviewed", "--actor", "carol")[0] == 0
    code, out, _ = cli("approve", "mix@v1", "--reason", "evals passed", "--actor", "alice")
    assert code == 0 and out.strip() == "mix@v1 is now approved (alice: evals passed)"
    assert cli("materialize", "mix", "--out", tmp_path / "m", "--require-approved")[0] == 0
    assert cli("recipe", "alias", "mix@v1", "prod")[0] == 0
    code, _, err = cli("approve", "mix@v1", "--reason", "again")
    assert code != 0 and "recipe mix@v1 is approved; it cannot become approved" in err
    assert cli("deprecate", "mix@prod", "--reason", "superseded", "--actor", "bob")[0] == 0
    code, _, err = cli("materialize", "mix@prod", "--out", tmp_path / "m2", "--require-approved")
    assert code != 0 and "is deprecated, not approved" in err

    events = json.loads(cli("--json", "log", "--object", "mix")[1])
    steps = [(e["action"], e["object"], e["actor"], e["details"].get("reason")) for e in events]
    assert steps == [
        ("recipe.add", "mix@v1", "tester", None),
        ("refused.recipe.approved", "mix@v1", "alice", steps[1][3]),
        ("recipe.approved", "mix@v1", "alice", "evals passed"),
        ("materialize", "mix@v1", "tester", None),
        ("recipe.alias", "mix@prod", "tester", None),
        ("recipe.deprecated", "mix@v1", "bob", "superseded"),
    ]
    everything = [e["action"] for e in json.loads(cli("--json", "log")[1])]
    assert everything[:4] == ["init", "base.add", "vector.import", "vector.import"]
    shown = json.loads(cli("--json", "recipe", "show", "mix@v1")[1])
    assert shown["status"] == "deprecated"


def test_vector_lifecycle(loaded):
    v = loaded.approve("helpful@v1", "reviewed", kind="vector")
    assert v.status == "approved" and v.status_actor == "tester"
    with pytest.raises(InvalidTransition, match="needs a reason"):
        loaded.deprecate("helpful", " ", kind="vector")
    loaded.deprecate("helpful", "bad data", kind="vector")
    with pytest.raises(InvalidTransition, match="vector helpful@v1 is deprecated; it cannot become approved"):
        loaded.approve("helpful@v1", "retry", kind="vector")
    assert loaded.vector("helpful@v1").status == "deprecated"
    with pytest.raises(NotFound, match="every version is deprecated"):
        loaded.vector("helpful")


def test_verify_lock_catches_one_byte(loaded, cli, tmp_path):
    loaded.add_recipe(write_recipe(tmp_path))
    loaded.materialize("mix", tmp_path / "m")
    lock = tmp_path / "m" / "registry-lock.json"
    code, out, _ = cli("verify", "--lock", lock)
    assert code == 0 and out.startswith("ok:")
    weights = tmp_path / "m" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(data)
    code, out, err = cli("verify", "--lock", lock)
    assert code == 1 and "model.safetensors: sha256 mismatch" in out
    assert err.strip() == "Error: lock check found 1 problem(s)"
    (tmp_path / "m" / "extra.bin").write_bytes(b"x")
    assert "extra.bin: not recorded" in loaded.verify_lock(lock)


def test_identical_materialization_is_reused_after_verification(loaded, cli, tmp_path):
    loaded.add_recipe(write_recipe(tmp_path))
    first = loaded.materialize("mix", tmp_path / "a")
    before = (tmp_path / "a" / "model.safetensors").stat().st_mtime_ns
    code, out, _ = cli("materialize", "mix", "--out", tmp_path / "a")
    assert code == 0 and out.startswith("reused verified output of mix@v1") and "nothing recomputed" in out
    assert (tmp_path / "a" / "model.safetensors").stat().st_mtime_ns == before
    copy = loaded.materialize("mix", tmp_path / "b")
    sources = {m.id: m.out_path for m in loaded.materializations()}
    assert sources[copy.reused_from_id] == str(tmp_path / "a") and copy.output_digest == first.output_digest
    assert (tmp_path / "b" / "model.safetensors").read_bytes() == (
        tmp_path / "a" / "model.safetensors"
    ).read_bytes()
    # a tampered earlier output is never reused: the recipe is computed again
    for folder in ("a", "b"):
        p = tmp_path / folder / "model.safetensors"
        data = bytearray(p.read_bytes())
        data[-1] ^= 0xFF
        p.write_bytes(data)
    fresh = loaded.materialize("mix", tmp_path / "c")
    assert fresh.reused_from_id is None and fresh.output_digest == first.output_digest


def test_gc_removes_only_unreferenced_data(loaded, cli):
    referenced = set(loaded.store.group_keys())
    writer = loaded.store.writer()  # a crashed import: data without a row
    import numpy as np

    writer.write([("x", (4, 4), [lambda: np.ones((4, 4), np.float32)])])
    writer.close()
    scratch = loaded.home / ".scratch" / "run99-dead"
    scratch.mkdir(parents=True)
    (scratch / "w.bin").write_bytes(b"0" * 1000)
    assert json.loads(cli("--json", "gc")[1])["removed"] == []  # within the grace period
    code, out, _ = cli("--json", "gc", "--grace", "0")
    report = json.loads(out)
    assert code == 0 and report["removed"] == [writer.key] and report["scratch"] == ["run99-dead"]
    assert report["freed_bytes"] > 1000
    assert set(loaded.store.group_keys()) == referenced and not scratch.exists()
    assert json.loads(cli("--json", "verify")[1])["ok"]
    assert [e.action for e in loaded.log()][-1] == "gc"


def test_sweep_is_monotone_in_eta_and_plots(sqlite_reg, cli, tmp_path):
    from registry.training.options import TrainingOptions

    # the hand-written detailed-over-terse pairs, whose held-out pairs score the sweep
    handwritten = {
        "data": str(Path(__file__).parent.parent / "data" / "verbose_pairs.jsonl"),
        "heldout_fraction": 0.2,
    }
    options = TrainingOptions(steps=6, learning_rate=1e-3)
    sqlite_reg.add_preference("pairs", "tiny", "verbose", seed=0, options=options, plugin_options=handwritten)
    sqlite_reg.add_recipe({"name": "v", "base": "tiny", "terms": [{"vector": "verbose", "weight": 1.0}]})
    code, out, err = cli(
        "--json", "sweep", "v", "--vary", "verbose", "--etas", "-1,-0.5,0,0.5,1", "--out", tmp_path / "s"
    )
    assert code == 0, err
    result = json.loads(out)
    margins = [r["pairs_margin"] for r in result["rows"]]
    assert [r["eta[verbose]"] for r in result["rows"]] == [-1, -0.5, 0, 0.5, 1]
    assert all(a < b for a, b in itertools.pairwise(margins)), margins
    assert abs(margins[2]) < 1e-3
    png = tmp_path / "s" / "sweep.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    rows = (tmp_path / "s" / "sweep.csv").read_text().splitlines()
    assert rows[0] == "eta[verbose],pairs_margin" and len(rows) == 6
    assert not list(tmp_path.glob("s/*.safetensors"))


def test_two_vector_sweep_grid(sqlite_reg, models, tmp_path, monkeypatch):
    from registry.evaluation.sweep import run_sweep

    monkeypatch.setenv("REGISTRY_EVAL_MAX_NEW_TOKENS", "4")  # a tiny random model: a few tokens suffice

    sqlite_reg.import_vector("drift", "tiny", models["plus"])
    sqlite_reg.add_recipe({"name": "g", "base": "tiny", "terms": [{"vector": "drift", "weight": 1.0}]})
    result = run_sweep(sqlite_reg, "g", ["drift"], [0.0, 1.0], evaluators=["answer_length"])
    assert [r["eta[drift]"] for r in result.rows] == [0.0, 1.0] and result.metrics == ["answer_length"]
    with pytest.raises(Exception, match="no evaluator"):
        run_sweep(sqlite_reg, "g", ["drift"], [0.0])
    sqlite_reg.import_vector("drift2", "tiny", models["plus2"])
    terms = [{"vector": "drift", "weight": 1.0}, {"vector": "drift2", "weight": 1.0}]
    sqlite_reg.add_recipe({"name": "g2", "base": "tiny", "terms": terms})
    grid = run_sweep(sqlite_reg, "g2", ["drift", "drift2"], [-1.0, 1.0], evaluators=["answer_length"])
    assert len(grid.rows) == 4
    files = grid.write(tmp_path / "grid")
    assert (tmp_path / "grid" / "sweep.png").stat().st_size > 0 and files["json"].endswith("sweep.json")


def test_not_approved_error_type(loaded, tmp_path):
    loaded.add_recipe(write_recipe(tmp_path))
    with pytest.raises(NotApproved):
        loaded.materialize("mix", tmp_path / "m", require_approved=True)


def test_deprecating_behind_an_alias_warns_and_materializing_it_warns(loaded, cli, tmp_path):
    assert cli("recipe", "add", write_recipe(tmp_path))[0] == 0
    loaded.approve("helpful", "reviewed", kind="vector")
    loaded.approve("mix@v1", "evals passed")
    loaded.set_alias("mix@v1", "prod")
    assert cli("materialize", "mix@prod", "--out", tmp_path / "m")[0] == 0

    code, out, err = cli("deprecate", "mix@v1", "--reason", "superseded")
    assert code == 0 and out.strip() == "mix@v1 is now deprecated (tester: superseded)"
    [line] = err.strip().splitlines()
    assert line.startswith("warning: mix@v1 is behind mix@prod: it now resolves to a deprecated version")

    code, out, err = cli("materialize", "mix@prod", "--out", tmp_path / "m")  # reuses the same folder
    assert code == 0 and out.startswith("reused verified output of mix@v1")
    [line] = err.strip().splitlines()
    assert line == (
        "warning: mix@v1 (behind mix@prod) is deprecated (superseded); materializing it anyway "
        "(--require-approved refuses it)"
    )
    code, out, err = cli("--json", "materialize", "mix@prod", "--out", tmp_path / "m2")
    assert code == 0 and json.loads(out)["recipe"] == "mix@v1"
    assert [json.loads(x) for x in err.strip().splitlines()] == [
        {"event": "warning", "message": line.removeprefix("warning: ")}
    ]
    code, _, err = cli("materialize", "mix@prod", "--out", tmp_path / "m3", "--require-approved")
    assert code == 1 and "mix@v1 is deprecated, not approved" in err

    # a vector behind a recipe's alias: the alias is named too
    code, out, err = cli("--json", "deprecate", "helpful", "--vector", "--reason", "retrained")
    assert code == 0 and json.loads(out)["aliases"] == ["mix@prod"]
    assert "helpful@v1 is behind mix@prod: they now use a deprecated vector" in json.loads(err)["message"]


def test_deprecate_does_not_offer_sign_key(cli):
    code, out, _ = cli("deprecate", "--help")
    assert code == 0 and "--sign-key" not in out and "--reason" in out
    code, out, _ = cli("approve", "--help")
    assert code == 0 and "--sign-key" in out
    code, _, err = cli("deprecate", "x", "--reason", "r", "--sign-key", "k.pem")
    assert code == 2 and "No such option '--sign-key'" in err
