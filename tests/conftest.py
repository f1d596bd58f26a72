"""Shared fixtures: tiny local models (built once), and a registry per test on each backend."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import ml_dtypes  # noqa: F401 - registers numpy's "bfloat16" for tests that use safetensors.numpy
import pytest

from tests.threads import holding

PG_ADMIN = os.environ.get("REGISTRY_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    """None if a PostgreSQL server answers, else the reason to skip."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        psycopg.connect(PG_ADMIN.replace("+psycopg", ""), connect_timeout=3).close()
    except Exception as e:
        return f"no PostgreSQL server answers at {PG_ADMIN}: {str(e).splitlines()[0]}"
    return None


PG_SKIP = _pg_available()


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """base, two fine-tune-like variants, a model of another shape, a variant with a NaN."""
    import torch
    from safetensors.torch import load_file, save_file

    from registry.testing.tiny_model import build_tiny_llama, perturbed_copy

    root = tmp_path_factory.mktemp("models")
    base = build_tiny_llama(root / "base", seed=0)
    out = {
        "base": base,
        "plus": perturbed_copy(base, root / "plus", seed=1),
        "minus": perturbed_copy(base, root / "minus", seed=2),
        "plus2": perturbed_copy(base, root / "plus2", seed=3),
        "wide": build_tiny_llama(root / "wide", seed=0, hidden=96),
        "other_base": build_tiny_llama(root / "other_base", seed=5),
    }
    nan = perturbed_copy(base, root / "nan", seed=4)
    tensors = load_file(nan / "model.safetensors")
    w = tensors["model.layers.1.mlp.up_proj.weight"].clone()
    w[3, 5] = float("nan")
    tensors["model.layers.1.mlp.up_proj.weight"] = w
    save_file(tensors, nan / "model.safetensors", metadata={"format": "pt"})
    out["nan"] = nan
    pickled = root / "pickled"
    shutil.copytree(out["plus"], pickled)
    torch.save({"x": torch.zeros(1)}, pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()  # pickles beside safetensors are ignored, not refused
    out["pickled"] = pickled
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'home' / 'registry.db'}"
        return
    if PG_SKIP:
        pytest.skip(PG_SKIP)
    import psycopg

    name = f"reg_{uuid.uuid4().hex[:12]}"
    admin = PG_ADMIN.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(autouse=True)
def declared_actors(monkeypatch):
    """Tests act as REGISTRY_ACTOR=tester, alice, bob…: every registry a test creates gets a
    team policy that accepts declared actors (tests about identity pass their own policy)."""
    from registry.db import policy

    monkeypatch.setitem(policy.NEW_REGISTRY, "allow_declared_actor", True)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    h = tmp_path / "home"
    h.mkdir(exist_ok=True)
    monkeypatch.setenv("REGISTRY_HOME", str(h))
    monkeypatch.setenv("REGISTRY_ACTOR", "tester")
    return h


@pytest.fixture
def reg(home, db_url):
    from registry import Registry

    r = Registry.init(home, db=db_url)
    yield r
    r.close()


@pytest.fixture
def loaded(reg, models):
    """A registry with base `tiny` and vectors helpful (θ+ vs base) and harmless (θ+2 vs θ−)."""
    reg.add_base("tiny", str(models["base"]))
    reg.import_vector("helpful", "tiny", models["plus"])
    reg.import_vector("harmless", "tiny", models["plus2"], models["minus"])
    return reg


@pytest.fixture
def cli(home):
    """Run the CLI in-process: returns (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from registry.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return run


@pytest.fixture
def sqlite_reg(home, models):
    """A SQLite registry with base `tiny`, for tests whose subject is not the database."""
    from registry import Registry

    r = Registry.init(home)
    r.add_base("tiny", str(models["base"]))
    yield r
    r.close()


@pytest.fixture
def test_plugins(monkeypatch):
    """Register extra entry points (name -> 'module:attr') the way an installed package would."""
    from importlib.metadata import EntryPoint

    from registry.plugins.loader import PLUGINS, Group

    def register(**extra: str) -> None:
        eps = dict(PLUGINS.entry_points())
        eps.update({n: EntryPoint(name=n, value=v, group=PLUGINS.group) for n, v in extra.items()})
        monkeypatch.setattr(Group, "entry_points", lambda g: eps if g == PLUGINS else real(g))

    real = Group.entry_points

    return register


@pytest.fixture
def hold():
    """hold(point) -> (reached, release): the first thread other than the test's to reach
    `point` waits there until released (tests/threads.py)."""
    with holding() as arm:
        yield arm
