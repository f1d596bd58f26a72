"""Materialize, import and interference at the limits of the machine, against mergekit.

    python benchmarks/bench_materialize.py [--workdir /tmp/bench] [--layers 16] [--repeat 3]
        [--mergekit /path/to/side-venv/bin/mergekit-yaml]

Builds (once) a random bf16 Llama of ~254M parameters and two fine-tune-like variants,
then times whole processes (`registry …` and `mergekit-yaml …`) and reads each one's peak
RSS from wait4(). Prints a JSON report and a Markdown table for docs/benchmarks.md.
mergekit is a benchmark peer only: install it in a separate virtual environment.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from registry.digests import file_sha256 as sha256_file

HERE = Path(__file__).resolve().parent
PY = sys.executable
REGISTRY = [PY, "-m", "registry.cli"]


def run(cmd: list[str], env: dict | None = None, quiet: bool = True) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one whole process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode() if p.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err[-2000:]}")
    return wall, usage.ru_maxrss * 1024


def repeat(n: int, cmd_for, env=None) -> dict:
    walls, rss = [], []
    for i in range(n):
        w, r = run(cmd_for(i), env)
        walls.append(w)
        rss.append(r)
    return {
        "wall_s": statistics.median(walls),
        "walls": [round(w, 3) for w in walls],
        "peak_rss_mb": max(rss) / 1e6,
    }


def bf16_ulps(a_dir: Path, b_dir: Path) -> dict:
    """Max |a − b|, max distance in bf16 ulps, and the share of values that differ."""
    from registry.tensor_io import SafetensorsFolder, to_f32

    a, b = SafetensorsFolder(a_dir), SafetensorsFolder(b_dir)
    assert a.names() == b.names(), "tensor names differ"
    max_abs, max_ulp, differ, total = 0.0, 0, 0, 0
    for n in a.names():
        x, y = a.read(n), b.read(n)
        assert a.spec(n).tag == b.spec(n).tag == "BF16", n
        xf, yf = to_f32(x, "BF16"), to_f32(y, "BF16")
        max_abs = max(max_abs, float(np.max(np.abs(xf - yf))))
        # ordered integer view of bf16: ulps between two values of the same sign
        xi, yi = x.astype(np.int32), y.astype(np.int32)
        xi = np.where(xi & 0x8000, 0x8000 - xi, xi)
        yi = np.where(yi & 0x8000, 0x8000 - yi, yi)
        max_ulp = max(max_ulp, int(np.max(np.abs(xi - yi))))
        differ += int(np.count_nonzero(xi != yi))
        total += xi.size
    return {"max_abs_diff": max_abs, "max_bf16_ulps": max_ulp, "share_differing": differ / total}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/registry-bench"))
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--mergekit", default=shutil.which("mergekit-yaml"), help="mergekit-yaml of a side venv")
    p.add_argument("--compare", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.compare:
        print(json.dumps(bf16_ulps(*args.compare)))
        return
    work = args.workdir / f"l{args.layers}"
    models = work / "models"
    if not (models / "minus" / "model.safetensors.index.json").exists():
        subprocess.run(
            [PY, str(HERE / "make_models.py"), str(models), "--layers", str(args.layers)],
            check=True,
            stdout=sys.stderr,
        )
    params = (
        json.loads((models / "base" / "model.safetensors.index.json").read_text())["metadata"]["total_size"]
        // 2
    )
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "REGISTRY_HOME": str(home)}
    report: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
        "params": params,
        "layers": args.layers,
    }
    run([*REGISTRY, "init"], env)
    report["base_add"] = dict(
        zip(
            ("wall_s", "peak_rss"),
            run([*REGISTRY, "base", "add", "big", str(models / "base")], env),
            strict=True,
        )
    )
    imp = run(
        [
            *REGISTRY,
            "vector",
            "import",
            "phi",
            "--base",
            "big",
            "--positive",
            str(models / "plus"),
            "--negative",
            str(models / "minus"),
        ],
        env,
    )
    report["import"] = {"wall_s": imp[0], "peak_rss_mb": imp[1] / 1e6}
    stored = sum(f.stat().st_size for f in (home / "vectors.zarr" / "data").rglob("*") if f.is_file())
    report["stored_bytes_per_param"] = stored / params
    recipe = work / "recipe.yaml"
    recipe.write_text("name: r\nbase: big\nterms:\n  - vector: phi\n    weight: 1.0\n")
    run([*REGISTRY, "recipe", "add", str(recipe)], env)
    outs = [work / f"out{i}" for i in range(args.repeat)]
    for o in outs:
        shutil.rmtree(o, ignore_errors=True)
    report["materialize"] = repeat(
        args.repeat, lambda i: [*REGISTRY, "materialize", "r", "--out", str(outs[i]), "--no-reuse"], env
    )
    digests = {
        sha256_file(o / "model.safetensors") for o in outs
    }  # hashed in blocks: this process stays small
    report["byte_identical_runs"] = len(digests) == 1
    if args.mergekit:
        # bf16: mergekit's natural setting for bf16 models (computes in bf16);
        # fp32: computes in float32 and rounds once, like registry (the accuracy peer)
        for label, dtypes in (
            ("bf16", "dtype: bfloat16\n"),
            ("fp32", "dtype: float32\nout_dtype: bfloat16\n"),
        ):
            cfg = work / f"mergekit-{label}.yml"
            cfg.write_text(
                f"merge_method: task_arithmetic\nbase_model: {models / 'base'}\nmodels:\n"
                f"  - model: {models / 'plus'}\n    parameters: {{weight: 1.0}}\n"
                f"  - model: {models / 'minus'}\n    parameters: {{weight: -1.0}}\n{dtypes}"
            )
            mk_outs = [work / f"mergekit-{label}-{i}" for i in range(args.repeat)]
            for o in mk_outs:
                shutil.rmtree(o, ignore_errors=True)
            report[f"mergekit_{label}"] = repeat(
                args.repeat,
                lambda i, c=cfg, o=mk_outs: [args.mergekit, str(c), str(o[i]), "--no-copy-tokenizer"],
            )
            report[f"speedup_vs_mergekit_{label}"] = (
                report[f"mergekit_{label}"]["wall_s"] / report["materialize"]["wall_s"]
            )
            # compared in a child process so this one stays small (children inherit its RSS until exec)
            diff = subprocess.run(
                [PY, __file__, "--compare", str(outs[0]), str(mk_outs[0])],
                capture_output=True,
                text=True,
                check=True,
            )
            report[f"diff_vs_mergekit_{label}"] = json.loads(diff.stdout)
    report["help"] = repeat(5, lambda i: [*REGISTRY, "--help"], env)
    report["vector_list"] = repeat(5, lambda i: [*REGISTRY, "vector", "list"], env)
    # Gram matrix: N = 2 and N = 4 vectors (the extra ones are imports of the same folders)
    run(
        [
            *REGISTRY,
            "vector",
            "import",
            "phi2",
            "--base",
            "big",
            "--positive",
            str(models / "minus"),
            "--negative",
            str(models / "plus"),
        ],
        env,
    )
    report["gram_n2"] = repeat(1, lambda i: [*REGISTRY, "interference", "--base", "big"], env)
    for name, pos in (("phi3", "plus"), ("phi4", "minus")):
        run([*REGISTRY, "vector", "import", name, "--base", "big", "--positive", str(models / pos)], env)
    report["gram_n4"] = repeat(1, lambda i: [*REGISTRY, "interference", "--base", "big"], env)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
