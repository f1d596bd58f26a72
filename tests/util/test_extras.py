"""The lean install, simulated: the CLI in a subprocess where importing torch, transformers,
trl, accelerate, peft or matplotlib fails as if they were not installed. The core verbs work;
a command that needs an extra names it in one line. (benchmarks/lean_install.py does the
same in a real venv with only the core installed.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from registry.errors import MissingExtra
from registry.util.digests import file_sha256
from registry.util.extras import require

HEAVY = ("torch", "transformers", "trl", "accelerate", "peft", "matplotlib")
BLOCKER = f'''
import sys

class _NotInstalled:
    """Makes the training and plotting stack look absent."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
'''


@pytest.fixture
def lean(tmp_path, home):
    site = tmp_path / "lean-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": str(site), "REGISTRY_HOME": str(home)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
        )

    return run


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
