"""Lean install against the full one: install size and time, and what the lean one can do.

    python benchmarks/lean_install.py [--workdir /tmp/lean-bench] [--out results/DATE-lean-install.json]

Makes two fresh virtual environments from this source tree (a regular, non-editable
install, as a pipeline would): `pip install TREE` (the core) and the README's
`pip install torch==2.13.0 && pip install 'TREE[train,plots]'` (the full stack). Records
wall time of each install and `du -sm` of each venv. Then, with the lean venv only, on a
registry built beforehand by this interpreter (which has the training stack): materialize
a recipe (compared byte for byte with the full venv's output), `verify`, and
`add-preference`, whose one-line refusal must name the training extra. pip uses whatever
wheel cache and local wheel folders this machine has (recorded as `pip_cache`).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TREE = HERE.parent
sys.path.insert(0, str(HERE))

from report import emit, load  # noqa: E402

from registry.util.digests import file_sha256  # noqa: E402


def sh(*cmd: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def make_venv(path: Path, installs: list[list[str]]) -> float:
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    sh(sys.executable, "-m", "venv", str(path)).check_returncode()
    for args in installs:
        done = sh(str(path / "bin" / "pip"), "install", "-q", *args)
        if done.returncode:
            raise SystemExit(f"pip install {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - t0


def size_mb(path: Path) -> int:
    return int(sh("du", "-sm", str(path)).stdout.split()[0])


def packages(path: Path) -> list[str]:
    out = sh(str(path / "bin" / "pip"), "list", "--format=freeze").stdout.split()
    return sorted(line.split("==")[0].lower() for line in out)


def build_registry(work: Path) -> Path:
    """A home with base tiny, one imported vector and recipe r@v1 (built with torch, here)."""
    from registry import Registry
    from registry.testing.tiny_model import build_tiny_llama, perturbed_copy

    base = build_tiny_llama(work / "models" / "base", seed=0)
    plus = perturbed_copy(base, work / "models" / "plus", seed=1)
    home = work / "home"
    with Registry.init(home) as reg:
        reg.add_base("tiny", str(base))
        reg.import_vector("helpful", "tiny", plus)
        reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 0.5}]})
    return home


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/lean-bench"))
    p.add_argument("--out", type=Path)
    a = p.parse_args()
    work = a.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    before = load()
    lean, full = work / "lean", work / "full"
    lean_s = make_venv(lean, [[str(TREE)]])
    full_s = make_venv(full, [["torch==2.13.0"], [f"{TREE}[train,plots]"]])
    home = build_registry(work)

    def cli(venv: Path, *args: str) -> subprocess.CompletedProcess:
        return sh(str(venv / "bin" / "registry"), "--home", str(home), *args)

    t0 = time.perf_counter()
    mat = cli(lean, "materialize", "r", "--out", str(work / "out-lean"))
    lean_mat_s = time.perf_counter() - t0
    verify = cli(lean, "verify")
    train = cli(lean, "add-preference", "verbose", "--base", "tiny")
    full_mat = cli(full, "materialize", "r", "--out", str(work / "out-full"), "--no-reuse")
    lean_pkgs, full_pkgs = packages(lean), packages(full)
    heavy = ["torch", "transformers", "trl", "accelerate", "matplotlib", "peft"]
    report = {
        "benchmark": "lean_install",
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "load_before": before,
        "load_after": load(),
        "pip_cache": "this machine's pip cache and local wheel folders (warm)",
        "lean": {
            "command": f"pip install {TREE}",
            "install_seconds": round(lean_s, 1),
            "venv_mb": size_mb(lean),
            "packages": len(lean_pkgs),
            "heavy_present": [h for h in heavy if h in lean_pkgs],
        },
        "full": {
            "command": f"pip install torch==2.13.0 && pip install '{TREE}[train,plots]'",
            "install_seconds": round(full_s, 1),
            "venv_mb": size_mb(full),
            "packages": len(full_pkgs),
            "heavy_present": [h for h in heavy if h in full_pkgs],
        },
        "lean_checks": {
            "materialize_rc": mat.returncode,
            "materialize_seconds": round(lean_mat_s, 2),
            "materialize_output": (mat.stdout + mat.stderr).strip().splitlines()[-1:],
            "output_equals_full_install": mat.returncode == 0
            and full_mat.returncode == 0
            and folder_digest(work / "out-lean") == folder_digest(work / "out-full"),
            "verify_rc": verify.returncode,
            "verify_output": verify.stdout.strip(),
            "add_preference_rc": train.returncode,
            "add_preference_stderr": train.stderr.strip(),
        },
    }
    emit(report, a.out)


if __name__ == "__main__":
    main()
