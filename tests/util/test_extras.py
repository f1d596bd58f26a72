"""The lean install, simulated: the CLI in a subprocess where importing torch, transformers,
trl, accelerate, peft or matplotlib fails as if they were not installed. The core verbs work;
a command that needs an extra names it in one line. (benchmarks/lean_install.py does the
same in a real venv with only the core installed.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry.errors import MissingExtra
from registry.util.digests import file_sha256
from registry.util.extras import require

HEAVY = ("torch", "transformers", "trl", "accelerate", "peft", "matplotlib")
ROOT = Path(__file__).resolve().parents[2]  # this checkout, whichever one is installed
DRIVERS = ("psycopg", "s3fs")  # the [postgres] and [s3] extras


def blocker(absent: tuple[str, ...]) -> str:
    return f'''
import sys

class _NotInstalled:
    """Makes these packages look absent."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {absent!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
'''


def without(tmp_path, home, absent: tuple[str, ...]):
    site = tmp_path / "lean-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(blocker(absent))
    path = [str(site), str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "REGISTRY_HOME": str(home)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
        )

    return run


@pytest.fixture
def lean(tmp_path, home):
    """The core install: no training stack, no matplotlib."""
    return without(tmp_path, home, HEAVY)


@pytest.fixture
def bare(tmp_path, home):
    """The core install without the database and store drivers either."""
    return without(tmp_path, home, HEAVY + DRIVERS)


def test_blocker_really_hides_the_stack(lean):
    done = lean("-c", "import torch")
    assert done.returncode == 1 and "No module named 'torch'" in done.stderr


def test_core_verbs_run_and_extras_are_named(lean, sqlite_reg, models, tmp_path):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    sqlite_reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 0.5}]})
    full = sqlite_reg.materialize("r", tmp_path / "full")

    done = lean("-m", "registry.cli", "materialize", "r", "--out", str(tmp_path / "lean"), "--no-reuse")
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (tmp_path / "full").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "lean").iterdir())
    for n in names:  # byte for byte what the full install wrote
        assert file_sha256(tmp_path / "lean" / n) == file_sha256(tmp_path / "full" / n), n
    assert sqlite_reg.materializations()[-1].output_digest == full.output_digest

    done = lean("-m", "registry.cli", "verify")
    assert done.returncode == 0, done.stderr
    assert "every pinned file and stored array matches" in done.stdout

    done = lean("-m", "registry.cli", "add-preference", "verbose", "--base", "tiny")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "Error: add-preference needs the training extra: pip install 'preference-registry[train]' "
        "(torch, transformers, trl, accelerate not installed)"
    ]
    done = lean(
        "-m", "registry.cli", "materialize", "r", "--out", str(tmp_path / "g"), "--max-ppl-drift", "5%"
    )
    assert done.stderr.splitlines() == [
        "Error: the retention gate (--max-ppl-drift) needs the training extra: "
        "pip install 'preference-registry[train]' (torch, transformers not installed)"
    ]
    assert not (tmp_path / "g").exists()
    done = lean("-m", "registry.cli", "interference", "--base", "tiny", "--plot", str(tmp_path / "i.png"))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Error: drawing a plot (--plot) needs the plots extra: pip install 'preference-registry[plots]' "
        "(matplotlib not installed)"
    ]
    done = lean("-m", "registry.cli", "interference", "--base", "tiny")  # without a plot: core
    assert done.returncode == 0, done.stderr


def test_no_registry_module_imports_the_stack_at_import_time(lean):
    """Every module of the package imports (the blocker would make a top-level import fail)
    and none of the stack is loaded, even where it is installed."""
    code = (
        "import importlib, pkgutil, sys, registry\n"
        "mods = [m.name for m in pkgutil.walk_packages(registry.__path__, 'registry.') if not m.name.endswith('__main__')]\n"
        "[importlib.import_module(m) for m in mods]\n"
        f"print(len(mods), sorted(h for h in {HEAVY!r} if h in sys.modules))\n"
    )
    lean_run = lean("-c", code)
    assert lean_run.returncode == 0, lean_run.stderr
    count, loaded = lean_run.stdout.split(" ", 1)
    assert int(count) > 60 and loaded.strip() == "[]"
    full_run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert full_run.returncode == 0 and full_run.stdout.split(" ", 1)[1].strip() == "[]", full_run.stderr


def test_require_names_what_is_missing():
    require("train", "json", what="x")  # installed: nothing happens
    with pytest.raises(MissingExtra) as e:
        require("plots", "json", "no_such_module_abc", what="drawing")
    assert str(e.value) == (
        "drawing needs the plots extra: pip install 'preference-registry[plots]' (no_such_module_abc not installed)"
    )


PG_LINE = (
    "Error: a PostgreSQL database (postgresql+psycopg://) needs the PostgreSQL extra: "
    "pip install 'preference-registry[postgres]' (psycopg not installed)"
)
S3_LINE = (
    "Error: an s3:// store needs the S3 extra: pip install 'preference-registry[s3]' (s3fs not installed)"
)


def test_blocker_hides_the_drivers(bare):
    for module in DRIVERS:
        done = bare("-c", f"import {module}")
        assert done.returncode == 1 and f"No module named '{module}'" in done.stderr


def test_a_postgresql_home_without_psycopg_is_one_line_before_any_work(bare, tmp_path):
    """Issue 34, item 2: not a 40-line traceback ending in No module named 'psycopg'."""
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    fresh = tmp_path / "pg-home"
    done = bare("-m", "registry.cli", "--home", str(fresh), "init", "--db", url)
    assert (done.returncode, done.stdout, done.stderr.splitlines()) == (1, "", [PG_LINE])
    assert not fresh.exists()  # nothing made before the refusal
    made = tmp_path / "made"  # a home another machine initialized
    made.mkdir()
    (made / "registry.toml").write_text(f'db = "{url}"\nstore = "/shared/vectors.zarr"\n')
    for command in (["vector", "list"], ["verify"], ["base", "show", "tiny"]):
        done = bare("-m", "registry.cli", "--home", str(made), *command)
        assert (done.returncode, done.stdout, done.stderr.splitlines()) == (1, "", [PG_LINE]), command
    done = bare("-m", "registry.cli", "--home", str(made), "--json", "vector", "list")
    assert json.loads(done.stderr)["message"] == PG_LINE.removeprefix("Error: ")


def test_an_s3_store_without_s3fs_is_one_line_before_any_work(bare, tmp_path):
    fresh = tmp_path / "s3-home"
    done = bare("-m", "registry.cli", "--home", str(fresh), "init", "--store", "s3://bucket/vectors.zarr")
    assert (done.returncode, done.stdout, done.stderr.splitlines()) == (1, "", [S3_LINE])
    assert not fresh.exists()
    made = tmp_path / "made"
    made.mkdir()
    (made / "registry.toml").write_text('db = "sqlite:///registry.db"\nstore = "s3://bucket/vectors.zarr"\n')
    done = bare("-m", "registry.cli", "--home", str(made), "vector", "show", "helpful")
    assert (done.returncode, done.stdout, done.stderr.splitlines()) == (1, "", [S3_LINE])
    assert sorted(p.name for p in made.iterdir()) == ["registry.toml"]  # no database file made


def test_tune_names_its_extra_before_any_progress(lean, sqlite_reg, models):
    """Issue 34, item 3: no "loading the base" line before the refusal."""
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    sqlite_reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 0.5}]})
    done = lean("-m", "registry.cli", "tune", "r", "--target", "answer_length=5")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        "Error: tune needs the training extra: pip install 'preference-registry[train]' "
        "(torch, transformers not installed)"
    ]


def test_vector_consistency_names_itself_before_training(lean, sqlite_reg, models):
    """Issue 34, item 3: not "training verbose with seed 1", then add-preference's line."""
    from registry.db.models import TrainingRun

    v = sqlite_reg.import_vector("verbose", "tiny", models["plus"])
    with sqlite_reg.Session.begin() as s:  # as if `add-preference verbose --seed 0` had made it
        run = s.get(TrainingRun, v.run_id)
        run.kind, run.plugin, run.seed, run.params = "dpo", "verbose", 0, {"steps": 2}
    done = lean("-m", "registry.cli", "vector", "consistency", "verbose", "--seeds", "2")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        "Error: vector consistency needs the training extra: pip install 'preference-registry[train]' "
        "(torch, transformers, trl, accelerate not installed)"
    ]
    assert [x.ref for x in sqlite_reg.vectors()] == ["verbose@v1"]


def test_the_tiny_model_builder_names_its_extra(lean, tmp_path):
    """Issue 34, item 7: the README's offline model builder, in the core install: one line."""
    done = lean("-m", "registry.testing.tiny_model", str(tmp_path / "models"))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        "Error: building the tiny model needs the training extra: pip install 'preference-registry[train]' "
        "(torch, transformers not installed)"
    ]
    assert not (tmp_path / "models").exists()
