"""`registry gc` collects the `.OUT.tmp-*` folders a SIGKILLed materialize left (issue 31.18),
and never one that a running materialize is still writing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RECIPE = {"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]}


def killed_materialize(home: Path, out: Path) -> subprocess.CompletedProcess:
    """A real `registry materialize` SIGKILLed after its folder is written, before the rename."""
    env = {**os.environ, "REGISTRY_HOME": str(home), "REGISTRY_CRASH_AT": "materialize:before-rename"}
    return subprocess.run(
        [sys.executable, "-m", "registry.cli", "materialize", "r", "--out", str(out), "--no-reuse"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def outputs(sqlite_reg, models, tmp_path):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    sqlite_reg.add_recipe(RECIPE)
    folder = tmp_path / "outputs"
    sqlite_reg.materialize("r", folder / "first")  # the registry now knows where its outputs go
    return sqlite_reg, folder


def test_gc_collects_what_a_killed_materialize_left(outputs, cli):
    reg, folder = outputs
    proc = killed_materialize(reg.home, folder / "second")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = [p for p in folder.iterdir() if p.name.startswith(".second.tmp-")]
    assert len(left) == 1 and (left[0] / "model.safetensors").is_file() and not (folder / "second").exists()
    size = sum(f.stat().st_size for f in left[0].rglob("*") if f.is_file())

    young = reg.gc(grace_seconds=3600)  # within the grace period: kept
    assert young["outputs"] == [] and left[0].exists()
    dry = reg.gc(grace_seconds=0, dry_run=True)
    assert dry["outputs"] == [str(left[0])] and dry["freed_bytes"] >= size and left[0].exists()

    code, out, err = cli("--json", "gc", "--grace", "0")
    assert code == 0, err
    report = json.loads(out)
    assert report["outputs"] == [str(left[0])] and report["freed_bytes"] >= size
    assert not left[0].exists()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".registry-writing-")) == [
        "first"
    ]
    assert (folder / "first" / "registry-lock.json").is_file()  # the recorded output is untouched
    assert [e.details["outputs"] for e in reg.log() if e.action == "gc"] == [[str(left[0])]]


def test_gc_keeps_the_folder_of_a_materialize_still_running(outputs):
    """A writer holds `.registry-writing-OUT` (flock) for its whole write: its folder stays,
    however old; once the lock is free, the folder goes."""
    from registry.release.destination import claim

    reg, folder = outputs
    busy = folder / ".third.tmp-0123abcd"
    busy.mkdir()
    (busy / "model.safetensors").write_bytes(b"x" * 100)
    old = time.time() - 7200
    os.utime(busy, (old, old))
    with claim(folder / "third"):
        assert reg.gc(grace_seconds=0)["outputs"] == []
        assert busy.exists()
    assert reg.gc(grace_seconds=0)["outputs"] == [str(busy)] and not busy.exists()


def test_gc_leaves_other_hidden_folders_alone(outputs):
    reg, folder = outputs
    keep = [folder / ".cache", folder / ".first.tmp-notahex!", folder / ".first.old-0123abcd"]
    for p in keep:
        p.mkdir()
    (folder / ".x.tmp-0123abcd").write_text("a file, not a folder")
    link_target = folder / "elsewhere"
    link_target.mkdir()
    (folder / ".y.tmp-0123abcd").symlink_to(link_target)
    assert reg.gc(grace_seconds=0)["outputs"] == []
    assert all(p.exists() for p in keep) and link_target.exists()
