"""Crash drills: SIGKILL a real registry process at points before, during and after its
data writes, then check that nothing is half-visible and that gc cleans up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest


def registry(home: Path, *args, crash: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "REGISTRY_HOME": str(home)}
    env.pop("REGISTRY_CRASH_AT", None)
    if crash:
        env["REGISTRY_CRASH_AT"] = crash
    proc = subprocess.run(
        [sys.executable, "-m", "registry.cli", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and not crash:
        assert proc.returncode == 0, proc.stderr
    return proc


def assert_consistent(home: Path, expect_vectors: list[str]) -> dict:
    vectors = json.loads(registry(home, "--json", "vector", "list").stdout)
    assert [v["ref"] for v in vectors] == expect_vectors
    report = json.loads(registry(home, "--json", "verify").stdout)
    assert report["ok"] and report["problems"] == []
    return report


@pytest.fixture
def crash_home(tmp_path, models):
    home = tmp_path / "home"
    registry(home, "init", "--allow-declared-actor")  # the drills act as REGISTRY_ACTOR=tester
    registry(home, "base", "add", "tiny", models["base"])
    return home


@pytest.mark.parametrize("point", ["store:before-data", "store:mid-data", "store:before-commit"])
def test_killed_import_leaves_nothing_visible(crash_home, models, point):
    proc = registry(
        crash_home, "vector", "import", "v", "--base", "tiny", "--positive", models["plus"], crash=point
    )
    assert proc.returncode == -signal.SIGKILL
    report = assert_consistent(crash_home, [])
    gc = json.loads(registry(crash_home, "--json", "gc", "--grace", "0").stdout)
    assert gc["removed"] == report["orphans"]
    assert (point == "store:before-data") == (gc["removed"] == [])
    assert json.loads(registry(crash_home, "--json", "verify").stdout)["orphans"] == []
    # the registry still works, and the next version is v1
    registry(crash_home, "vector", "import", "v", "--base", "tiny", "--positive", models["plus"])
    assert_consistent(crash_home, ["v@v1"])


def test_killed_after_commit_keeps_the_complete_vector(crash_home, models):
    proc = registry(
        crash_home,
        "vector",
        "import",
        "v",
        "--base",
        "tiny",
        "--positive",
        models["plus"],
        crash="store:after-commit",
    )
    assert proc.returncode == -signal.SIGKILL
    report = assert_consistent(crash_home, ["v@v1"])
    assert report["orphans"] == []


@pytest.mark.parametrize("point", ["write:mid-file", "materialize:before-rename", "materialize:after-rename"])
def test_killed_materialize_leaves_absent_or_complete_folder(crash_home, models, tmp_path, point):
    registry(crash_home, "vector", "import", "v", "--base", "tiny", "--positive", models["plus"])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nbase: tiny\nterms:\n  - {vector: v, weight: 1.0}\n")
    registry(crash_home, "recipe", "add", recipe)
    out = tmp_path / "out"
    proc = registry(crash_home, "materialize", "r", "--out", out, crash=point)
    assert proc.returncode == -signal.SIGKILL
    recorded = json.loads(registry(crash_home, "--json", "log").stdout)
    assert not [e for e in recorded if e["action"] == "materialize"]  # no record without its folder
    if point == "materialize:after-rename":
        assert json.loads(
            registry(crash_home, "--json", "verify", "--lock", out / "registry-lock.json", check=False).stdout
        )["problems"] == [
            "registry: no materialization of r@v1 with output digest "
            + json.loads((out / "registry-lock.json").read_text())["output_digest"][:16]
            + "…"
        ]
    else:
        assert not out.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert all(".tmp-" in name for name in leftovers)
    assert_consistent(crash_home, ["v@v1"])
    # a rerun completes and records the folder
    proc = registry(crash_home, "materialize", "r", "--out", out, "--force")
    assert proc.returncode == 0
    assert json.loads(registry(crash_home, "--json", "verify", "--lock", out / "registry-lock.json").stdout)[
        "ok"
    ]


@pytest.mark.parametrize("point", ["train:after-plus", "store:mid-data"])
def test_killed_training_is_marked_failed_by_gc(crash_home, point):
    proc = registry(crash_home, "add-preference", "verbose", "--base", "tiny", "--steps", "2", crash=point)
    assert proc.returncode == -signal.SIGKILL
    assert_consistent(crash_home, [])
    gc = json.loads(registry(crash_home, "--json", "gc", "--grace", "0").stdout)
    assert gc["interrupted_runs"] == [1]
    from registry import Registry

    reg = Registry.open(crash_home)
    from sqlalchemy import select

    from registry.db.models import TrainingRun

    with reg.Session() as s:
        run = s.scalar(select(TrainingRun))
    assert run.status == "failed" and "interrupted" in run.error
    assert not list((crash_home / ".scratch").iterdir())
