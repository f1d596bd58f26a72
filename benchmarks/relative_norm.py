"""How large is a preference vector relative to its base? Grounds the plausibility limit.

    python benchmarks/relative_norm.py [--workdir /tmp/relnorm] [--steps 20 100]

Builds the tiny test Llama, registers it, imports a fine-tune-like fixture and a model of
the same shapes initialised independently ("another base"), trains the `verbose` plugin's
φ by DPO (θ+ and label-switched θ−, learning rate 1e-3, the CLI default), then prints
‖φ‖/‖θbase‖ for every vector over the matrices (what `registry` checks) and over all
float tensors. An existing --workdir is re-scored without training again.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="/tmp/relnorm")
    ap.add_argument("--steps", type=int, nargs="*", default=[20, 100])
    args = ap.parse_args()
    from registry import Registry
    from registry.storage.tensor_io import FLOATS, SafetensorsFolder, row_blocks, to_f32

    root = Path(args.workdir)
    home = root / "home"
    if not home.exists():
        from registry.testing.tiny_model import build_tiny_llama, perturbed_copy
        from registry.training.options import TrainingOptions

        base = build_tiny_llama(root / "base", seed=0)
        reg = Registry.init(home)
        reg.add_base("tiny", str(base))
        reg.import_vector("fixture", "tiny", perturbed_copy(base, root / "plus", seed=1))
        reg.import_vector("other-base", "tiny", build_tiny_llama(root / "other", seed=5))
        for steps in args.steps:
            reg.add_preference(
                "verbose", "tiny", name=f"verbose-{steps}", options=TrainingOptions(steps=steps)
            )
    reg = Registry.open(home)
    b = reg.base("tiny")
    w = SafetensorsFolder(b.path)
    sq = {"matrices": 0.0, "all": 0.0}
    for name in w.names():
        spec = w.spec(name)
        if spec.tag in FLOATS:
            total = sum(
                float((to_f32(w.read_rows(name, a, c), spec.tag).astype(np.float64) ** 2).sum())
                for a, c in row_blocks(spec.shape)
            )
            sq["all"] += total
            sq["matrices"] += total if len(spec.shape) >= 2 else 0.0
    report = {"machine": platform.node(), "base_params": b.param_count, "vectors": {}}
    for v in reg.vectors("tiny"):
        vec = reg.vector(v.ref)
        m = sum(t.norm**2 for t in vec.tensors if len(t.shape) >= 2)
        a = sum(t.norm**2 for t in vec.tensors)
        report["vectors"][v.ref] = {
            "relative_norm_matrices": float(np.sqrt(m / sq["matrices"])),
            "relative_norm_all": float(np.sqrt(a / sq["all"])),
            "stored": vec.interference.get("plausibility", {}).get("relative_norm"),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
