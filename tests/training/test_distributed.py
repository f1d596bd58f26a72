"""add-preference under `accelerate launch` with 2 CPU processes (gloo): one vector, one run.

The GPU configurations (DDP, FSDP, DeepSpeed ZeRO-3 with bf16) take the same code path:
every rank trains and takes part in gathering the float32 state dict; rank 0 writes θ±,
records the run and reports progress (docs/training.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.skipif(
    shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None,
    reason="accelerate CLI not installed",
)
def test_two_process_launch_writes_one_vector(sqlite_reg, home):
    accelerate = str(Path(sys.executable).parent / "accelerate")
    env = {**os.environ, "REGISTRY_HOME": str(home), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        # --multi_gpu selects accelerate's torchrun launcher; without GPUs the processes use gloo on the CPU
        [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "-m", "registry.cli", "--json", "add-preference", "verbose", "--base", "tiny",
         "--steps", "2", "--seed", "5", "--log-every", "1"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    reported = json.loads(proc.stdout)
    assert reported["ref"] == "verbose@v1" and reported["lineage"]["status"] == "succeeded"
    assert reported["lineage"]["params"]["data_format"] == "plain"
    assert [v.ref for v in sqlite_reg.vectors()] == ["verbose@v1"]
    # only rank 0 reports: one options line, one JSON progress line per step and half
    err = proc.stderr.splitlines()
    assert sum(line.startswith("training: plain format") for line in err) == 1
    steps = [json.loads(line) for line in err if line.startswith('{"event": "train_step"')]
    assert [(r["label"], r["step"]) for r in steps] == [("plus", 1), ("plus", 2), ("minus", 1), ("minus", 2)]
    from sqlalchemy import func, select

    from registry.db.models import TrainingRun

    with sqlite_reg.Session() as s:
        assert s.scalar(select(func.count()).select_from(TrainingRun)) == 1
    assert sqlite_reg.verify() == [] and sqlite_reg.orphans() == []
    assert not list((home / ".scratch").iterdir())
