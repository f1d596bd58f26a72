"""Import, materialize (every method), interference and verify against mergekit, one size per run.

    python benchmarks/bench_materialize.py [--workdir /work/bench] [--layers 16] [--repeat 3]
        [--hidden 1024 --vocab 32000 --intermediate 2464 | --preset 8b]
        [--methods linear,ties,dare] [--mergekit /path/to/side-venv/bin/mergekit-yaml]
        [--variants bf16|f32]
        [--out benchmarks/results/DATE-LABEL.json]

Builds (once) a random bf16 Llama and two fine-tune-like variants θ± (make_models.py), then
times whole processes (`registry …` and `mergekit-yaml …`) and reads each one's wall time,
CPU time (user + system) and peak RSS from wait4(). Our materialize and mergekit's runs are
interleaved (ours, mergekit bf16, mergekit fp32, ours, …) so that the ratios of one run see
the same machine load; every timed process starts after os.sync(). Outputs are deleted as soon as they are hashed (the first of each kind
is kept until it has been compared), so disk use stays at about two models.
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
from report import cpu, emit, load

from registry.util.digests import file_sha256 as sha256_file

HERE = Path(__file__).resolve().parent
PY = sys.executable
REGISTRY = [PY, "-m", "registry.cli"]


def run(cmd: list[str], env: dict | None = None, quiet: bool = True, cwd: Path | None = None) -> dict:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one whole process.

    Dirty pages are flushed first, so no run pays (at its first fsync) for the writeback of
    the run before it: mergekit's buffered outputs and deleted files otherwise land on the
    next process that commits a journal transaction (our SQLite commit waited 1.4 s once).
    """
    os.sync()
    load1 = round(os.getloadavg()[0], 2)  # each run's own load, beside its time
    t0 = time.perf_counter()
    out = subprocess.DEVNULL if quiet else None
    p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.PIPE, cwd=cwd)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read().decode() if p.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err[-2000:]}")
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(usage.ru_maxrss * 1024 / 1e6, 1),
        "load1_before": load1,
    }


def summary(runs: list[dict]) -> dict:
    return {
        "wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
        "walls": [r["wall_s"] for r in runs],
        "loads": [r["load1_before"] for r in runs],
        "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
    }


def repeat(n: int, cmd_for, env=None) -> dict:
    return summary([run(cmd_for(i), env) for i in range(n)])


def bf16_ulps(a_dir: Path, b_dir: Path) -> dict:
    """Max |a − b|, max distance in bf16 ulps, and the share of values that differ."""
    from registry.storage.tensor_io import SafetensorsFolder, to_f32

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
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--intermediate", type=int, default=2464)
    p.add_argument("--preset", choices=["8b"], help="8b: Llama-3-8B tensor shapes (see make_models.py)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument(
        "--variants", choices=["bf16", "f32"], default="bf16", help="f32: θ± as float32 master weights"
    )
    p.add_argument("--methods", default="linear,ties,dare", help="methods timed besides linear's repeats")
    p.add_argument("--mergekit", default=shutil.which("mergekit-yaml"), help="mergekit-yaml of a side venv")
    p.add_argument("--keep-models", action="store_true", help="keep the built models for a later run")
    p.add_argument("--mergekit-modes", default="bf16,fp32", help="which of mergekit's dtypes to time")
    p.add_argument(
        "--no-extras", action="store_true", help="skip --help, vector list, interference and verify"
    )
    p.add_argument("--out", type=Path, help="also write the JSON report here")
    p.add_argument("--compare", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.compare:
        print(json.dumps(bf16_ulps(*args.compare)))
        return
    label = f"{args.preset}-l{args.layers}" if args.preset else f"h{args.hidden}-l{args.layers}"
    if args.variants != "bf16":
        label = f"{args.variants}-{label}"
    work = args.workdir / label
    models = work / "models"
    if not (models / "minus" / "config.json").exists():
        shape = ["--preset", args.preset] if args.preset else [
            "--hidden", str(args.hidden), "--vocab", str(args.vocab), "--intermediate", str(args.intermediate)
        ]  # fmt: skip
        subprocess.run(
            [
                PY,
                str(HERE / "make_models.py"),
                str(models),
                "--layers",
                str(args.layers),
                *shape,
                "--variants",
                args.variants,
            ],
            check=True,
            stdout=sys.stderr,
        )
    from registry.storage.tensor_io import SafetensorsFolder

    base_w = SafetensorsFolder(models / "base")
    params = sum(base_w.spec(n).numel for n in base_w.names())
    home = work / "home"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "REGISTRY_HOME": str(home)}
    report: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"{platform.python_implementation()} {platform.python_version()}",
        "cpu": cpu(),
        "params": params,
        "model": json.loads((models / "base" / "config.json").read_text()),
        "load_before": load(),
    }
    R = REGISTRY
    run([*R, "init"], env)
    report["base_add"] = run([*R, "base", "add", "big", str(models / "base")], env)
    report["import"] = run(
        [*R, "vector", "import", "phi", "--base", "big", "--positive", str(models / "plus"),
         "--negative", str(models / "minus")],
        env,
    )  # fmt: skip
    stored = sum(f.stat().st_size for f in (home / "vectors.zarr" / "data").rglob("*") if f.is_file())
    report["stored_bytes_per_param"] = stored / params
    recipes = {"linear": "", "ties": "method: ties\nparameters: {density: 0.2}\n",
               "dare": "method: dare\nparameters: {drop_rate: 0.9, seed: 0}\n"}  # fmt: skip
    for m, extra in recipes.items():
        recipe = work / f"recipe-{m}.yaml"
        recipe.write_text(f"name: r-{m}\nbase: big\n{extra}terms:\n  - vector: phi\n    weight: 1.0\n")
        run([*R, "recipe", "add", str(recipe)], env)

    def ours(i: int) -> dict:
        out = work / f"out{i}"
        shutil.rmtree(out, ignore_errors=True)
        r = run([*R, "materialize", "r-linear", "--out", str(out), "--no-reuse"], env)
        r["digest"] = ",".join(sha256_file(f) for f in sorted(out.glob("*.safetensors")))
        if i:
            shutil.rmtree(out)
        return r

    configs = {}
    if args.mergekit:
        # bf16: mergekit's natural setting for bf16 models (computes in bf16);
        # fp32: computes in float32 and rounds once, like registry (the accuracy peer)
        modes = args.mergekit_modes.split(",")
        for kind, dtypes in (
            ("bf16", "dtype: bfloat16\n"),
            ("fp32", "dtype: float32\nout_dtype: bfloat16\n"),
        ):
            if kind not in modes:
                continue
            cfg = work / f"mergekit-{kind}.yml"
            cfg.write_text(
                f"merge_method: task_arithmetic\nbase_model: {models / 'base'}\nmodels:\n"
                f"  - model: {models / 'plus'}\n    parameters: {{weight: 1.0}}\n"
                f"  - model: {models / 'minus'}\n    parameters: {{weight: -1.0}}\n{dtypes}"
            )
            configs[kind] = cfg

    def theirs(kind: str, i: int) -> dict:
        out = work / f"mergekit-{kind}-{i}"
        shutil.rmtree(out, ignore_errors=True)
        r = run([args.mergekit, str(configs[kind]), str(out), "--no-copy-tokenizer"])
        if i:
            shutil.rmtree(out)
        return r

    runs: dict[str, list[dict]] = {"materialize": [], **{f"mergekit_{k}": [] for k in configs}}
    for i in range(args.repeat):  # interleaved: each round sees the same machine load
        runs["materialize"].append(ours(i))
        for kind in configs:
            runs[f"mergekit_{kind}"].append(theirs(kind, i))
    report["materialize"] = summary(runs["materialize"])
    report["materialize"]["runs"] = runs["materialize"]
    report["byte_identical_runs"] = len({r["digest"] for r in runs["materialize"]}) == 1
    for kind in configs:
        key = f"mergekit_{kind}"
        report[key] = summary(runs[key])
        report[f"speedup_vs_{key}"] = round(report[key]["wall_s"] / report["materialize"]["wall_s"], 2)
        report[f"cpu_ratio_vs_{key}"] = round(report[key]["cpu_s"] / report["materialize"]["cpu_s"], 2)
        # per round: each of our runs against the mergekit run right after it
        report[f"speedup_per_round_vs_{key}"] = [
            round(t["wall_s"] / o["wall_s"], 2) for o, t in zip(runs["materialize"], runs[key], strict=True)
        ]
        diff = subprocess.run(
            [PY, __file__, "--compare", str(work / "out0"), str(work / f"mergekit-{kind}-0")],
            capture_output=True,
            text=True,
            check=True,
        )  # in a child process so this one stays small
        report[f"diff_vs_{key}"] = json.loads(diff.stdout)
        shutil.rmtree(work / f"mergekit-{kind}-0", ignore_errors=True)
    shutil.rmtree(work / "out0", ignore_errors=True)
    for m in [m for m in args.methods.split(",") if m and m != "linear"]:
        # one run each (the first materialization of a recipe also builds its model card,
        # ~1 s of huggingface_hub import, cached per recipe content afterwards)
        out = work / f"out-{m}"
        report[f"materialize_{m}"] = run([*R, "materialize", f"r-{m}", "--out", str(out), "--no-reuse"], env)
        shutil.rmtree(out, ignore_errors=True)
    if not args.no_extras:
        report["help"] = repeat(3, lambda i: [*R, "--help"], env)
        report["vector_list"] = repeat(3, lambda i: [*R, "vector", "list"], env)
        # Gram matrix: N = 2 and N = 4 vectors (the extra ones are imports of the same folders)
        run([*R, "vector", "import", "phi2", "--base", "big", "--positive", str(models / "minus"),
             "--negative", str(models / "plus")], env)  # fmt: skip
        report["gram_n2"] = run([*R, "interference", "--base", "big"], env)
        for name, pos in (("phi3", "plus"), ("phi4", "minus")):
            run([*R, "vector", "import", name, "--base", "big", "--positive", str(models / pos)], env)
        report["gram_n4"] = run([*R, "interference", "--base", "big"], env)
        report["verify_n4"] = run([*R, "verify"], env)
    report["load_after"] = load()
    shutil.rmtree(home, ignore_errors=True)
    if not args.keep_models:
        shutil.rmtree(models, ignore_errors=True)
    emit(report, args.out)


if __name__ == "__main__":
    main()
