"""Bad input: a one-line error, a non-zero exit, and nothing written anywhere."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from registry.db import models as m


def snapshot(reg, out_parent):
    with reg.Session() as s:
        counts = {
            t.__tablename__: s.scalar(select(func.count()).select_from(t))
            for t in (
                m.BaseModel,
                m.Vector,
                m.VectorTensor,
                m.TrainingRun,
                m.Recipe,
                m.Alias,
                m.Materialization,
            )
        }
    return counts, reg.store.group_keys(), sorted(p.name for p in out_parent.iterdir())


@pytest.fixture
def setup(loaded, models, tmp_path):
    loaded.add_base("other", str(models["other_base"]))
    loaded.import_vector("foreign", "other", models["plus"])
    out_parent = tmp_path / "outs"
    out_parent.mkdir()
    return loaded, out_parent


def write_recipe(tmp_path, text: str):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


GOOD = "name: r\nbase: tiny\nmethod: linear\nterms:\n  - vector: helpful\n    weight: 1.0\n"

CASES = {
    "unknown vector": (
        ["recipe", "add", "{recipe}"],
        GOOD.replace("helpful", "nosuch"),
        "vector not found: nosuch",
    ),
    "vector of another base": (
        ["recipe", "add", "{recipe}"],
        GOOD.replace("helpful", "foreign"),
        "vector not found: foreign (it exists, but for another base)",
    ),
    "malformed yaml": (
        ["recipe", "add", "{recipe}"],
        "name: [unclosed\nbase: tiny",
        "malformed YAML at line",
    ),
    "unknown key": (["recipe", "add", "{recipe}"], GOOD + "colour: blue\n", "colour: unknown key"),
    "nan weight": (
        ["recipe", "add", "{recipe}"],
        GOOD.replace("1.0", ".nan"),
        "terms.0.weight: weight must be a finite number",
    ),
    "inf weight": (
        ["recipe", "add", "{recipe}"],
        GOOD.replace("1.0", "-.inf"),
        "weight must be a finite number",
    ),
    "string weight": (
        ["recipe", "add", "{recipe}"],
        GOOD.replace("1.0", "lots"),
        "weight must be a finite number",
    ),
    "unknown method": (
        ["recipe", "add", "{recipe}"],
        GOOD.replace("linear", "magic"),
        "unknown merge method",
    ),
    "unknown base in recipe": (
        ["recipe", "add", "{recipe}"],
        GOOD.replace("tiny", "nobase"),
        "base not found: nobase",
    ),
    "slash in recipe name": (
        ["recipe", "add", "{recipe}"],
        GOOD.replace("name: r", "name: a/b"),
        "invalid name 'a/b'",
    ),
    "unknown recipe": (["materialize", "nosuch", "--out", "{out}"], None, "recipe not found: nosuch"),
    "unknown alias": (
        ["materialize", "nosuch@prod", "--out", "{out}"],
        None,
        "recipe alias not found: nosuch@prod",
    ),
    "unknown base": (
        ["vector", "import", "v", "--base", "nobase", "--positive", "{plus}"],
        None,
        "base not found: nobase",
    ),
    "shape mismatch": (
        ["vector", "import", "v", "--base", "tiny", "--positive", "{wide}"],
        None,
        "has shape",
    ),
    "nan in weights": (
        ["vector", "import", "v", "--base", "tiny", "--positive", "{nan}"],
        None,
        "positive weights: tensor model.layers.1.mlp.up_proj.weight contains NaN or Inf",
    ),
    "pickle weights": (
        ["vector", "import", "v", "--base", "tiny", "--positive", "{pickled}"],
        None,
        "refusing pickle-based weight files (pytorch_model.bin)",
    ),
    "dotdot vector name": (
        ["vector", "import", "..", "--base", "tiny", "--positive", "{plus}"],
        None,
        "invalid vector name",
    ),
    "slash vector name": (
        ["vector", "import", "a/b", "--base", "tiny", "--positive", "{plus}"],
        None,
        "invalid vector name",
    ),
    "control char name": (
        ["vector", "import", "a\x07b", "--base", "tiny", "--positive", "{plus}"],
        None,
        "invalid vector name 'a\\\\x07b'",
    ),
    "slash base name": (["base", "add", "../x", "{plus}"], None, "invalid base name"),
    "pickle base": (["base", "add", "pick", "{pickled}"], None, "refusing pickle-based weight files"),
    "missing source": (["base", "add", "gone", "{out}/missing"], None, "base source not found"),
    "unknown vector show": (["vector", "show", "nosuch@v3"], None, "vector not found: nosuch@v3"),
    "bad reference": (["vector", "show", "x@"], None, "invalid vector reference 'x@'"),
    "version-like alias": (["recipe", "alias", "r", "v2"], None, "it would read as a version number"),
    "alias of unknown recipe": (["recipe", "alias", "r", "prod"], None, "recipe not found: r"),
}


PROGRESS = re.compile(r"^(import|materialize) \S+: [\d.]+/[\d.]+ (tensors|MB) \(\d+%\), ")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_cleanly(setup, models, cli, tmp_path, case):
    reg, out_parent = setup
    args, recipe_text, message = CASES[case]
    recipe = write_recipe(tmp_path, recipe_text) if recipe_text else None
    fill = {"recipe": recipe, "out": out_parent / "o", **{k: v for k, v in models.items()}}
    args = [a.format(**fill) for a in args]
    before = snapshot(reg, out_parent)
    code, _out, err = cli(*args)
    assert code != 0
    # what was under way may be reported first (long work is not silent); the refusal is one line
    lines = [x for x in err.strip().splitlines() if not PROGRESS.match(x)]
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    assert message in lines[0]
    assert snapshot(reg, out_parent) == before


def test_changed_base_is_refused(loaded, models, tmp_path):
    import shutil

    from registry.errors import IntegrityError

    copy = tmp_path / "base-copy"
    shutil.copytree(models["base"], copy)
    loaded.add_base("mutable", str(copy))
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-3] ^= 0x10
    (copy / "model.safetensors").write_bytes(data)
    with pytest.raises(
        IntegrityError,
        match=r"base mutable .* no longer matches its pins: model\.safetensors sha256 mismatch",
    ):
        loaded.import_vector("x", "mutable", models["plus"])
    assert any("base mutable: model.safetensors sha256 mismatch" in p for p in loaded.verify())


def test_unreachable_database_is_one_line(home, cli, monkeypatch):
    code, _, err = cli("init", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert code != 0 and err.count("\n") == 1
    assert err.startswith("Error: cannot reach database postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert not (home / "registry.toml").exists() and not (home / "vectors.zarr").exists()


def test_missing_or_foreign_store_is_refused(loaded, cli, tmp_path):
    import shutil

    from registry import Registry

    other = Registry.init(tmp_path / "other")
    store = loaded.store.path
    shutil.move(store, tmp_path / "moved")
    code, _, err = cli("vector", "show", "helpful")
    assert code != 0 and err.strip() == f"Error: vector store missing at {store}"
    shutil.copytree(other.store.path, store)
    code, _, err = cli("vector", "show", "helpful")
    assert code != 0 and f"vector store {store} belongs to another registry" in err


def test_existing_output_refused_unless_forced_cli(loaded, cli, tmp_path):
    loaded.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    code, _, err = cli("materialize", "r", "--out", out)
    assert code != 0 and err.strip() == (
        f"Error: {out} exists and is not an output of this registry, which --force never replaces: "
        "choose another --out, or empty it yourself"
    )  # no --force hint: --force would be refused too
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    code, _, err = cli("materialize", "r", "--out", out, "--force")  # not an output of ours
    assert code != 0 and "is not an earlier output of this registry" in err and err.count("\n") == 1
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    (out / "mine.txt").unlink()
    assert cli("materialize", "r", "--out", out)[0] == 0
    loaded.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 0.5}]})
    code, _, err = cli("materialize", "r@v2", "--out", out)  # our earlier output: --force would work
    assert code != 0 and err.strip() == f"Error: {out} exists and is not empty (use --force to replace it)"
    code, out_text, err = cli("materialize", "r@v2", "--out", out, "--force")
    assert code == 0 and out_text.startswith("materialized r@v2"), err


def test_materialize_refuses_changed_base_and_corrupt_chunk(loaded, models, tmp_path):
    import shutil

    from registry.errors import IntegrityError

    copy = tmp_path / "base-copy"
    shutil.copytree(models["base"], copy)
    loaded.add_base("mutable", str(copy))
    loaded.import_vector("v", "mutable", models["plus"])
    loaded.add_recipe({"name": "m", "base": "mutable", "terms": [{"vector": "v", "weight": 1.0}]})
    loaded.materialize("m", tmp_path / "ok")  # warms the stat cache: the next check must still see the change
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[len(data) // 3] ^= 0x04
    (copy / "model.safetensors").write_bytes(data)
    with pytest.raises(IntegrityError, match=r"base mutable .* model\.safetensors sha256 mismatch"):
        loaded.materialize("m", tmp_path / "bad", reuse=False)
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad*"))
    loaded.add_recipe({"name": "h", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    v = loaded.vector("helpful", "tiny")
    chunk = loaded.store.path / "data" / v.store_key / "lm_head.weight" / "c.0.0"
    raw = bytearray(chunk.read_bytes())
    raw[10] ^= 0x80
    chunk.write_bytes(raw)
    with pytest.raises(
        IntegrityError,
        match=r"helpful@v1: array lm_head\.weight cannot be decoded \(chunk 0: crc32c mismatch\)",
    ):
        loaded.materialize("h", tmp_path / "bad2")
    assert not (tmp_path / "bad2").exists()
