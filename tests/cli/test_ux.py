"""A newcomer's first hour (issue 16): damaged databases, backups, --json placement, home
discovery, import warnings, implausible vectors, pickles beside safetensors, sweeps."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

RECIPE = "name: r\nbase: tiny\nterms:\n  - vector: helpful\n    weight: 1.0\n"


def one_line_error(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("Error: "), (code, err)
    return lines[0]


def damage(path: Path) -> None:
    """8 KiB of garbage written into the middle of the file, as the issue's drill does."""
    import sqlite3

    conn = sqlite3.connect(path)  # first move everything from the write-ahead log into the file
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2 - 4096)
        f.write(random.Random(16).randbytes(8192))


@pytest.fixture
def small(sqlite_reg, models, tmp_path):
    """base tiny, vector helpful, recipe r; the registry closed so the file can be damaged."""
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    (tmp_path / "r.yaml").write_text(RECIPE)
    sqlite_reg.add_recipe(tmp_path / "r.yaml")
    sqlite_reg.close()
    return sqlite_reg.home


def test_damaged_sqlite_file_gives_one_line_everywhere_and_verify_reports_it(small, cli, models, tmp_path):
    db = small / "registry.db"
    damage(db)
    commands = [
        ["recipe", "list"],
        ["approve", "r", "--reason", "evals passed"],
        ["recipe", "add", tmp_path / "r.yaml"],
        ["vector", "import", "h2", "--base", "tiny", "--positive", models["plus"]],
        ["export", "r", "--out", tmp_path / "b.tar"],
        ["gc"],
        ["vector", "list"],
        ["log"],
        ["materialize", "r", "--out", tmp_path / "out"],
    ]
    for args in commands:
        code, _, err = cli(*args)
        line = one_line_error(code, err)
        assert f"database file {db} is damaged" in line and "registry backup" in line, (args, line)
    assert not (tmp_path / "out").exists() and not (tmp_path / "b.tar").exists()
    code, out, err = cli("verify")
    assert "malformed" in out  # SQLite's own finding, on stdout
    assert "is damaged" in one_line_error(code, err)
    code, out, err = cli("verify", "--json")
    assert code != 0 and json.loads(out)["ok"] is False


def test_a_restored_backup_works_again(small, cli, tmp_path):
    code, out, err = cli("backup", tmp_path / "bk")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "bk").iterdir()) == [
        "registry.db",
        "registry.toml",
        "vectors.zarr",
    ]
    code, out, _ = cli("--home", tmp_path / "bk", "verify", "--json")
    assert code == 0 and json.loads(out)["ok"]
    assert "exists and is not empty" in one_line_error(*cli("backup", tmp_path / "bk")[::2])
    damage(small / "registry.db")
    assert cli("vector", "list")[0] != 0
    shutil.copyfile(tmp_path / "bk" / "registry.db", small / "registry.db")
    code, out, _ = cli("vector", "list", "--json")
    assert code == 0 and [v["ref"] for v in json.loads(out)] == ["helpful@v1"]
    assert cli("verify")[0] == 0


@pytest.mark.parametrize("state", ["empty", "missing"])
def test_empty_or_missing_database_file_says_how_to_repair(small, cli, state):
    db = small / "registry.db"
    if state == "empty":
        db.write_bytes(b"")
    else:
        db.unlink()
    line = one_line_error(*cli("recipe", "list")[::2])
    assert f"database file {db} is {state}" in line
    assert "registry backup" in line and "move registry.toml" in line  # not "run `registry init`" alone
    assert db.exists() is (state == "empty") and db.stat().st_size == 0 if state == "empty" else True


def test_database_errors_on_postgresql_are_one_line_and_verify_checks_rows_against_store(loaded, cli, db_url):
    if db_url.startswith("sqlite"):
        pytest.skip("the SQLite file drill is above; this one drives a server database")
    import sqlalchemy

    assert cli("verify")[0] == 0
    victim = loaded.vector("helpful").store_key
    loaded.store.delete(victim)  # rows whose data is gone
    code, out, _ = cli("verify")
    assert code != 0 and "vector helpful@v1 (base tiny)" in out
    with loaded.engine.begin() as conn:
        conn.execute(sqlalchemy.text("DROP TABLE audit_events"))
    for args in (["log"], ["approve", "harmless", "--vector", "--reason", "ok"]):
        line = one_line_error(*cli(*args)[::2])
        assert "database error in postgresql" in line and "audit_events" in line, line
        assert "registry verify" in line
    code, out, _ = cli("verify")
    assert "database: table audit_events is missing" in out and code != 0


def test_backup_of_a_postgresql_registry_points_to_pg_dump(loaded, cli, db_url, tmp_path):
    if db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL only")
    assert "pg_dump" in one_line_error(*cli("backup", tmp_path / "bk")[::2])
    assert not (tmp_path / "bk").exists()


def test_json_is_accepted_after_the_sub_command(small, cli):
    before = cli("--json", "vector", "list")
    assert before[0] == 0
    assert cli("vector", "list", "--json") == before
    assert cli("vector", "show", "helpful", "--json")[1] == cli("--json", "vector", "show", "helpful")[1]
    code, out, _ = cli("recipe", "show", "r", "--json")
    assert code == 0 and json.loads(out)["ref"] == "r@v1"


def test_home_is_found_upward_like_git_and_the_search_is_named(small, cli, monkeypatch, tmp_path):
    monkeypatch.delenv("REGISTRY_HOME")
    deep = small / "notes" / "deeper"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    code, out, err = cli("vector", "list", "--json")
    assert code == 0 and json.loads(out)[0]["ref"] == "helpful@v1", err
    assert cli("recipe", "list")[0] == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    line = one_line_error(*cli("vector", "list")[::2])
    assert f"looked for registry.toml in {elsewhere} and every folder above it" in line


def test_vector_import_prints_the_interference_warning(sqlite_reg, cli, models):
    assert cli("vector", "import", "helpful", "--base", "tiny", "--positive", models["plus"])[0] == 0
    code, out, err = cli("vector", "import", "helpful", "--base", "tiny", "--positive", models["plus"])
    assert code == 0
    assert "warning: vector helpful interferes with helpful@v1: |cosine| 1.0000 > threshold 0.9" in err
    assert "cosine with helpful@v1: +1.0000" in out


def _norm(folder: Path) -> dict[str, np.ndarray]:
    import torch
    from safetensors.torch import load_file

    return {k: v.to(torch.float64).numpy() for k, v in load_file(folder / "model.safetensors").items()}


def test_relative_norm_is_stored_and_a_foreign_fine_tune_is_flagged(sqlite_reg, cli, models):
    from registry.config import InterferencePolicy
    from registry.errors import IncompatibleWeights

    base, plus = _norm(models["base"]), _norm(models["plus"])
    floats = [k for k in base if base[k].dtype.kind == "f" and base[k].ndim >= 2]
    expected = np.sqrt(sum(((plus[k] - base[k]) ** 2).sum() for k in floats)) / np.sqrt(
        sum((base[k] ** 2).sum() for k in floats)
    )
    code, _, err = cli("vector", "import", "helpful", "--base", "tiny", "--positive", models["plus"])
    assert code == 0 and "warning" not in err
    report = sqlite_reg.vector("helpful").interference["plausibility"]
    assert report["relative_norm"] == pytest.approx(expected, rel=1e-5) and report["limit"] == 1.0
    assert "relative norm: " in cli("vector", "show", "helpful")[1]

    code, _, err = cli("vector", "import", "foreign", "--base", "tiny", "--positive", models["other_base"])
    assert code == 0 and "warning: φ's norm is 1.4" in err and "fine-tuned from base tiny?" in err
    rel = sqlite_reg.vector("foreign").interference["plausibility"]["relative_norm"]
    assert 1.2 < rel < 1.6  # two independent initialisations: about √2 apart

    with pytest.raises(IncompatibleWeights, match=r"policy: refuse"):
        sqlite_reg.import_vector(
            "foreign2", "tiny", models["other_base"], policy=InterferencePolicy("refuse")
        )
    assert [v.ref for v in sqlite_reg.vectors()] == ["foreign@v1", "helpful@v1"]


def test_pickles_beside_safetensors_are_ignored_never_read(sqlite_reg, cli, models, tmp_path):
    both = tmp_path / "both"
    shutil.copytree(models["plus"], both)
    (both / "pytorch_model.bin").write_bytes(b"not even a pickle: reading it would fail")
    base2 = tmp_path / "base2"
    shutil.copytree(models["base"], base2)
    (base2 / "pytorch_model.bin").write_bytes(b"garbage")
    assert cli("vector", "import", "v", "--base", "tiny", "--positive", both)[0] == 0
    code, _, err = cli("base", "add", "tiny2", base2)
    assert code == 0, err
    assert "pytorch_model.bin" not in {f.filename for f in sqlite_reg.base("tiny2").files}
    assert cli("vector", "import", "v", "--base", "tiny2", "--positive", both)[0] == 0
    sqlite_reg.add_recipe({"name": "m", "base": "tiny2", "terms": [{"vector": "v", "weight": 1.0}]})
    assert cli("materialize", "m", "--out", tmp_path / "out")[0] == 0
    assert not (tmp_path / "out" / "pytorch_model.bin").exists()
    only = tmp_path / "only"
    shutil.copytree(models["plus"], only)
    (only / "model.safetensors").rename(only / "model.pt")
    line = one_line_error(*cli("vector", "import", "w", "--base", "tiny", "--positive", only)[::2])
    assert "refusing pickle-based weight files (model.pt)" in line


# -- sweeps ------------------------------------------------------------------------------
@pytest.fixture
def two_terms(sqlite_reg, models):
    sqlite_reg.import_vector("drift", "tiny", models["plus"])
    sqlite_reg.import_vector("drift2", "tiny", models["plus2"])
    sqlite_reg.import_vector("other", "tiny", models["minus"])
    terms = [{"vector": n, "weight": w} for n, w in (("drift", 1.0), ("drift2", 0.5), ("other", 0.25))]
    sqlite_reg.add_recipe({"name": "g", "base": "tiny", "terms": terms})
    return sqlite_reg


def test_sweep_refuses_non_finite_eta_and_vectors_outside_the_recipe(two_terms, cli, models, tmp_path):
    two_terms.import_vector("stranger", "tiny", models["plus"])
    for etas in ("nan,1", "0,inf", "-inf"):
        line = one_line_error(
            *cli("sweep", "g", "--vary", "drift", "--etas", etas, "--out", tmp_path / "s")[::2]
        )
        assert "η must be finite numbers" in line
    line = one_line_error(
        *cli("sweep", "g", "--vary", "stranger", "--evaluator", "verbose", "--out", tmp_path / "s")[::2]
    )
    assert "vector stranger is not a term of recipe g@v1 (its terms: drift, drift2, other)" in line
    assert not (tmp_path / "s").exists()


def test_two_dimensional_sweep_names_its_vectors_and_the_fixed_term(two_terms, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("REGISTRY_EVAL_MAX_NEW_TOKENS", "4")  # a tiny random model: a few tokens suffice
    code, out, err = cli(
        "sweep", "g", "--vary", "drift", "--vary", "drift2", "--etas", "-1,1",
        "--evaluator", "answer_length", "--out", tmp_path / "s",
    )  # fmt: skip
    assert code == 0, err
    header = next(line for line in out.splitlines() if line.strip()).split()
    assert header[:2] == ["eta[drift]", "eta[drift2]"], out
    assert "fixed at their recipe weights: other=0.25" in out
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["fixed"] == {"other": 0.25}


def test_sweep_figures_label_colour_bar_annotate_cells_and_show_fixed_weights():
    import matplotlib.pyplot as plt

    from registry.evaluation.plots import MARGIN, sweep_figure
    from registry.evaluation.sweep import SweepResult

    rows = [{"eta[a]": x, "eta[b]": y, "m": 10 * x + y} for x in (-1.0, 0.0, 1.0) for y in (0.0, 2.0)]
    fig = sweep_figure(SweepResult("g@v1", ["a", "b"], ["m"], rows, fixed={"c": 0.5}))
    heat, bar = fig.axes
    assert bar.get_ylabel() == MARGIN
    cells = sorted(t.get_text() for t in heat.texts)
    assert cells == sorted(f"{r['m']:+.3g}" for r in rows)
    assert "fixed: c=0.5" in fig._suptitle.get_text()
    plt.close(fig)
    one = [{"eta[a]": x, "m": x} for x in (-1.0, 1.0)]
    fig = sweep_figure(SweepResult("g@v1", ["a"], ["m"], one, fixed={"b": 1.0, "c": 0.5}))
    assert "fixed: b=1, c=0.5" in fig._suptitle.get_text()
    plt.close(fig)
